"""What a model can do besides training, declared once. The commands (gan-sample, gan-translate, gan-eval,
gan-blend), the evaluator and the callbacks ask `isinstance(model, <capability>)` and use only what the
capability declares below; a model lists its capabilities among its base classes.

| capability      | models                                                   | used by                               |
|-----------------|----------------------------------------------------------|---------------------------------------|
| Sampler         | gan, dcgan, cgan, infogan, ssgan, lapgan, text_cgan,     | gan-sample, gan-eval (FID/KID/IS),    |
|                 | stackgan, vae, rbm, stylegan2                            | the mode-coverage callback            |
| ChainSampler    | lapgan                                                   | gan-sample chain=true                 |
| LatentSampler   | gan, dcgan, cgan, sngan, vae, stylegan2                  | gan-sample interpolate=, truncation=  |
| TruncatingSampler | stylegan2 (truncates in its own w)                     | gan-sample truncation=                |
| TextSampler     | text_cgan, stackgan                                      | gan-sample text= / text_file=         |
| Translator      | pix2pix, cyclegan, unit, direct_translation              | gan-translate, gan-eval               |
| LabelClassifier | classifier, dbn, capsnet                                 | gan-eval (held-out accuracy)          |
| SelfEvaluating  | autoencoder, vae, rbm, dbn, infogan, ssgan               | gan-eval and metrics= (own scores)    |
| Blender         | gpgan                                                    | gan-blend                             |

A model that is no Sampler says why in `no_samples_reason` (gan_cli.models.base.GenerativeModule), which
gan-sample shows with what to use instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn


class Sampler(ABC):
    """Draws images from noise."""

    #: labels `sample` takes: 0 for an unconditional model, else labels 0 .. num_classes - 1
    num_classes: int = 0
    #: keyword settings `sample` takes besides n and labels, which gan-sample passes on (e.g. "gibbs_steps")
    sample_options: tuple[str, ...] = ()

    @abstractmethod
    def sample(self, n: int, labels: Tensor | None = None, **options: Any) -> Tensor:
        """`n` images in data space (normalised as the data), in eval mode; for a conditional model of the
        given labels, else of labels drawn at random."""

    def sample_labels(self, n: int) -> Tensor | None:
        """`n` labels drawn uniformly for a conditional model, None for an unconditional one."""
        if not self.num_classes:
            return None
        return torch.randint(0, self.num_classes, (n,), device=self.device)


class ChainSampler(Sampler):
    """Draws coarse to fine, and can show each step of the way."""

    @abstractmethod
    def chain(self, n: int, labels: Tensor | None = None) -> list[Tensor]:
        """Each level's images of `n` samples, coarse to fine, all at the full size; the last is the sample."""


class LatentSampler(Sampler):
    """Draws images from latent vectors z ~ N(0, I) of `latent_dim` that it can be given, so that gan-sample can
    walk between them (interpolate=) and truncate them (truncation=)."""

    latent_dim: int = 0

    @abstractmethod
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (in data space, eval mode) for the latent vectors `z` (n, latent_dim) and, for a conditional
        model, their labels."""


class TruncatingSampler(LatentSampler):
    """A LatentSampler that truncates in a latent space of its own rather than z's: gan-sample's truncation=PSI
    draws z ~ N(0, I) and hands psi to `generate`, which moves each sample's intermediate latent towards the
    model's average one (StyleGAN's w_avg + psi (w - w_avg): psi 0 gives the average image, 1 no truncation)."""

    @abstractmethod
    def generate(self, z: Tensor, labels: Tensor | None = None, truncation: float | None = None) -> Tensor:
        """As LatentSampler.generate, truncated by psi = `truncation` (None: not truncated)."""


class TextSampler(Sampler):
    """Draws images for sentences: `sample(n, labels, text=embeddings)` with embeddings of the run's text
    encoder (the checkpoint's `text_encoder` config), (n, dim) or (1, dim) for all."""


class Translator(ABC):
    """Translates images of one domain into another (the data's A and B)."""

    #: direction ("AtoB", "BtoA") -> the name of the generator that translates it
    GENERATORS: dict[str, str] = {}
    #: how the generators run at test time: "eval", or "paper" (dropout on, batch statistics of the test batch)
    inference: str = "eval"

    @abstractmethod
    def translator(self, direction: str) -> nn.Module:
        """The network that translates `direction` (the moving average with tricks=[ema])."""

    @classmethod
    @abstractmethod
    def translator_from(cls, model_config: dict, state_dict: dict, direction: str) -> nn.Module:
        """The network that translates `direction`, built alone from a checkpoint's model config and weights (a
        run without tricks): gan-translate builds no discriminator."""

    @abstractmethod
    def translate(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """Normalised images of any size, translated in `direction` as `inference` says."""


class LabelClassifier(ABC):
    """Labels images: `model(images)` gives class logits (N, num_classes) of images normalised like the data."""

    num_classes: int = 0

    @abstractmethod
    def features(self, images: Tensor) -> Tensor:
        """The representation the logits are computed from (N, D)."""


class SelfEvaluating(ABC):
    """Has scores of its own, computed by gan-eval and by the training metrics besides the generic ones."""

    @abstractmethod
    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """{name: value}, with the evaluator's settings (batch size, reference split, classifier) and data."""


class Blender(ABC):
    """Blends a pasted region into an image at a low resolution (GP-GAN's Blending GAN, for gan-blend)."""

    channels: int = 3

    @abstractmethod
    def low_res_blend(self, composites: Tensor) -> Tensor:
        """Copy-and-paste composites in [0, 1] (C x H x W or N x C x H x W, any size) -> blends in [0, 1]."""
