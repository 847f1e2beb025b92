"""gan-cli: train generative models from the command line with Hydra configs and PyTorch Lightning."""

__version__ = "0.1.0"
