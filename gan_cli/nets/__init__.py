"""Building blocks shared by several models, as plain nn.Modules usable without Lightning or Hydra: DCGAN and
MLP networks, the ResNet and U-Net generators, the PatchGAN discriminator, normalisation and initialisation,
the image pool, learning-rate schedules, image pyramids, spectral normalisation and the tricks' layers.
A network only one model uses lives beside that model (gan_cli/models/<family>/<model>_nets.py)."""

from gan_cli.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.image_pool import ImagePool
from gan_cli.nets.mlp import MLPDiscriminator, MLPGenerator
from gan_cli.nets.patchgan import PatchGANDiscriminator
from gan_cli.nets.resnet import ResnetGenerator
from gan_cli.nets.schedules import LinearDecay
from gan_cli.nets.unet import UnetGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "ImagePool", "LinearDecay", "MLPDiscriminator", "MLPGenerator",
           "PatchGANDiscriminator", "ResnetGenerator", "UnetGenerator"]
