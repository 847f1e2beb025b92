"""Datasets and the DataModule that turns them into batches of named fields."""

from gan_cli.data.datamodule import DataSpec, ImageDataModule

__all__ = ["DataSpec", "ImageDataModule"]
