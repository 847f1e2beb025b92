"""InfoGAN's MNIST networks (Chen et al. 2016, appendix C.1), for any image size divisible by 4 and any
channel count.

G: FC 1024 BN ReLU -> FC (s/4)x(s/4)x128 BN ReLU -> upconv 64 4x4 s2 BN ReLU -> upconv channels 4x4 s2 Tanh.
D body: conv 64 4x4 s2 lReLU(0.1) -> conv 128 4x4 s2 BN lReLU -> FC 1024 BN lReLU, shared by
D's head (FC -> 1 logit) and Q's head (FC 128 BN lReLU -> FC to the codes' parameters).
The paper's widths are the defaults (fc=1024, ngf=ndf=64, q_hidden=128); the output is Tanh, as the data
lies in [-1, 1] (the authors' code modelled [0, 1] pixels with a sigmoid).
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.nets.layers import dcgan_init_


def _quarter(image_size: int) -> int:
    if image_size < 4 or image_size % 4:
        raise ValueError(f"InfoGAN's networks need an image size divisible by 4 (got {image_size}); "
                         "set data.image_size=28 or 32")
    return image_size // 4


def code_dims(categorical_codes: Sequence[int], continuous_codes: int) -> int:
    """Size of the code vector c that joins the noise: one-hot categorical codes, then continuous codes."""
    if any(int(k) < 2 for k in categorical_codes) or continuous_codes < 0:
        raise ValueError(f"categorical codes need at least 2 values each (got {list(categorical_codes)}) and "
                         f"continuous_codes must be >= 0 (got {continuous_codes})")
    return sum(int(k) for k in categorical_codes) + int(continuous_codes)


class InfoGANGenerator(nn.Module):
    """G(z, c): the input is the noise z (`noise_dim`) followed by the code c (one-hot categorical codes,
    then the continuous codes), `latent_dim` values in all."""

    def __init__(self, noise_dim: int = 62, categorical_codes: Sequence[int] = (10,), continuous_codes: int = 2,
                 channels: PositiveInt = 1, image_size: PositiveInt = 32, fc: int = 1024, ngf: int = 64) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.latent_dim = noise_dim + code_dims(categorical_codes, continuous_codes)
        self.num_classes = 0
        self.side = _quarter(image_size)
        self.width = 2 * ngf
        self.fc = nn.Sequential(
            nn.Linear(self.latent_dim, fc, bias=False), nn.BatchNorm1d(fc), nn.ReLU(True),
            nn.Linear(fc, self.width * self.side**2, bias=False), nn.BatchNorm1d(self.width * self.side**2),
            nn.ReLU(True),
        )
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(self.width, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh(),
        )
        dcgan_init_(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is not None:
            raise ValueError("InfoGANGenerator is unconditional: its codes are part of z, it takes no labels")
        return self.conv(self.fc(z).view(z.size(0), self.width, self.side, self.side))


class InfoGANDiscriminator(nn.Module):
    """D(x) and Q(c | x) on a shared body.

    `forward(x)` gives D's score logits only, shape (N,); `q(x)` gives Q's outputs (N, q_dim): the logits of
    each categorical code side by side, then the means of the continuous codes, then (with `learn_std`)
    their log standard deviations. `both(x)` gives (scores, q) from one pass through the body.
    `score_layer` is D's last layer (nn.Linear 1024 -> 1).
    """

    def __init__(self, categorical_codes: Sequence[int] = (10,), continuous_codes: int = 2, learn_std: bool = False,
                 channels: PositiveInt = 1, image_size: PositiveInt = 32, fc: int = 1024, ndf: int = 64,
                 q_hidden: int = 128) -> None:
        super().__init__()
        self.num_classes = 0
        self.q_dim = code_dims(categorical_codes, continuous_codes) + (int(continuous_codes) if learn_std else 0)
        side = _quarter(image_size)
        self.body = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.1, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * ndf * side**2, fc, bias=False), nn.BatchNorm1d(fc), nn.LeakyReLU(0.1, inplace=True),
        )
        self.score_layer = nn.Linear(fc, 1)
        self.q_head = nn.Sequential(
            nn.Linear(fc, q_hidden, bias=False), nn.BatchNorm1d(q_hidden), nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(q_hidden, self.q_dim),
        )
        dcgan_init_(self)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is not None:
            raise ValueError("InfoGANDiscriminator is unconditional: it takes no labels")
        return self.score_layer(self.body(x)).flatten()

    def q(self, x: Tensor) -> Tensor:
        """Q's outputs for images `x`: (N, q_dim)."""
        return self.q_head(self.body(x))

    def both(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(D's score logits (N,), Q's outputs (N, q_dim)) from one pass through the shared body."""
        h = self.body(x)
        return self.score_layer(h).flatten(), self.q_head(h)
