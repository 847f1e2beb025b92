"""OmegaConf resolvers the configs use for values that follow from other values.

    ${gan_cli.add:a,b}               a + b (e.g. a run as long as its learning-rate schedule)
    ${gan_cli.log2:256}              8: the depth of a U-Net that reduces 256 px to 1 px
    ${gan_cli.resnet_blocks:256}     9 residual blocks at 256 px and above, 6 below (Zhu et al. 2017)
    ${gan_cli.load_size:256}         286: the resize before a random crop, 286/256 of the crop
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf


def _log2(n: int) -> int:
    if n < 1 or 2 ** round(math.log2(n)) != n:
        raise ValueError(f"{n} is not a power of two")
    return round(math.log2(n))


RESOLVERS = {
    "gan_cli.add": lambda *values: sum(values),
    "gan_cli.log2": _log2,
    "gan_cli.resnet_blocks": lambda size: 9 if int(size) >= 256 else 6,
    "gan_cli.load_size": lambda crop: round(int(crop) * 286 / 256),
}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, function, replace=True)
