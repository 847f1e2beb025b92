"""What the experiment trackers show besides Lightning's own logging: TensorBoard's HPARAMS view of a run."""
