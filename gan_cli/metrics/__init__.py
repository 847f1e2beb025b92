"""Sample-quality measures: the feature networks FID and KID look through, the torchmetrics scores, the
evaluation record, and how evaluation work is shared between DDP ranks. gan_cli.evaluation applies them to
a model."""
