"""One LightningModule per model family; each training step reads like its paper."""
