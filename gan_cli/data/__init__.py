"""Datasets and the DataModules that turn them into batches of named fields."""

from gan_cli.data.datamodule import DataSpec, ImageDataModule
from gan_cli.data.translation import TranslationDataModule

__all__ = ["DataSpec", "ImageDataModule", "TranslationDataModule"]
