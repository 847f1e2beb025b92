"""gan-cli's Hydra plugins (Hydra finds sweepers in the hydra_plugins namespace only)."""
