"""Plain nn.Modules: usable without Lightning or Hydra."""

from gan_cli.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
