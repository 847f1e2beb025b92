"""Plain nn.Modules: usable without Lightning or Hydra."""

from gan_cli.nets.classifier import ConvClassifier
from gan_cli.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.image_pool import ImagePool
from gan_cli.nets.infogan import InfoGANDiscriminator, InfoGANGenerator
from gan_cli.nets.mlp import MLPDiscriminator, MLPGenerator
from gan_cli.nets.patchgan import PatchGANDiscriminator
from gan_cli.nets.resnet import ResnetGenerator
from gan_cli.nets.schedules import LinearDecay
from gan_cli.nets.unet import UnetGenerator

__all__ = ["ConvClassifier", "DCGANDiscriminator", "DCGANGenerator", "ImagePool", "LinearDecay", "MLPDiscriminator",
           "InfoGANDiscriminator", "InfoGANGenerator", "MLPGenerator", "PatchGANDiscriminator", "ResnetGenerator", "UnetGenerator"]
