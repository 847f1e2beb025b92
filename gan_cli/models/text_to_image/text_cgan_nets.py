"""The networks of GAN-INT-CLS (Reed et al. 2016): DCGAN's generator and discriminator, conditioned on a
sentence embedding phi(t).

Both networks first compress phi(t) with a fully connected layer + LeakyReLU(0.2) to a short code (128-D in
the paper). G joins the code to z; D joins it to its 4x4 feature map (replicated spatially, `joint`) or
scores it against the image features apart from the realism score (`separate`), see
gan_cli.nets.conditional_heads. With conditioning augmentation (StackGAN's) G draws its code from
N(mu(phi_t), Sigma(phi_t)) instead.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_cli.config.ranges import PositiveInt
from gan_cli.models.text_to_image.conditioning import ConditioningAugmentation, kl_to_standard_normal
from gan_cli.nets.conditional_heads import ConditionalHead
from gan_cli.nets.dcgan import DCGANGenerator, dcgan_features
from gan_cli.nets.layers import dcgan_init_


def text_compressor(text_dim: int, code_dim: int) -> nn.Sequential:
    """phi(t) -> a code_dim code: the paper's fully connected layer and leaky rectifier."""
    return nn.Sequential(nn.Linear(text_dim, code_dim), nn.LeakyReLU(0.2, inplace=True))


class TextGenerator(nn.Module):
    """G(z, phi(t)): the text code joined to z, then DCGAN's generator.

    `encode_text(text)` gives the code and, with conditioning augmentation, the KL term of its Gaussian
    (None without); `decode(z, code)` the images. `forward(z, text)` is both, for sampling.
    """

    def __init__(self, text_dim: int, latent_dim: int = 100, code_dim: PositiveInt = 128, channels: PositiveInt = 1,
                 image_size: PositiveInt = 32, ngf: int = 64, conditioning_augmentation: bool = False) -> None:
        super().__init__()
        self.text_dim, self.latent_dim, self.code_dim = text_dim, latent_dim, code_dim
        self.conditioning_augmentation = conditioning_augmentation
        if conditioning_augmentation:
            self.text_code: nn.Module = ConditioningAugmentation(text_dim, code_dim)
        else:
            self.text_code = text_compressor(text_dim, code_dim)
        dcgan_init_(self.text_code)
        self.body = DCGANGenerator(latent_dim, channels, image_size, ngf, num_classes=code_dim)

    def encode_text(self, text: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.conditioning_augmentation:
            return self.text_code(text), None
        code, mu, logvar = self.text_code(text)
        return code, kl_to_standard_normal(mu, logvar)

    def decode(self, z: Tensor, code: Tensor) -> Tensor:
        return self.body(z, code)  # a vector condition passes DCGANGenerator's one-hot step unchanged

    def forward(self, z: Tensor, text: Tensor) -> Tensor:
        return self.decode(z, self.encode_text(text)[0])


class TextDiscriminator(nn.Module):
    """D(x, phi(t)): DCGAN's strided convolutions down to 4x4, the compressed text, and a conditional head
    (`condition_style` joint: Reed et al.'s replicate-and-concatenate at 4x4; separate: realism + match)."""

    def __init__(self, text_dim: int, code_dim: PositiveInt = 128, channels: PositiveInt = 1,
                 image_size: PositiveInt = 32, ndf: int = 64, condition_style: str = "joint") -> None:
        super().__init__()
        self.text_dim, self.code_dim = text_dim, code_dim
        self.features, width = dcgan_features(channels, image_size, ndf)
        self.text_code = text_compressor(text_dim, code_dim)
        self.head = ConditionalHead(width, code_dim, condition_style)
        dcgan_init_(self)

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        return self.head(self.features(x), self.text_code(text))
