"""StyleGAN2's sizes per resolution (model.preset), after the configurations of the authors' StyleGAN2-ADA code
(Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", its train.py `--cfg`):

| preset   | for    | channel_base | channel_max | mapping | r1_gamma | mbstd group | EMA half-life | EMA ramp-up |
|----------|--------|--------------|-------------|---------|----------|-------------|---------------|-------------|
| cifar    | 32 px  | 32768        | 512         | 2       | 0.01     | 32          | 500 kimg      | 0.05        |
| auto64   | 64 px  | 16384        | 512         | 2       | 0.0128   | 4           | 20 kimg       | 0.05        |
| auto128  | 128 px | 16384        | 512         | 2       | 0.0512   | 4           | 20 kimg       | 0.05        |
| paper256 | 256 px | 16384        | 512         | 8       | 1        | 8           | 20 kimg       | none        |
| tiny     | tests  | 256          | 16          | 2       | 1        | 4           | 0.1 kimg      | none        |

cifar and paper256 are the authors' configurations of those names; auto64 and auto128 are their `--cfg=auto`
rules at 64 and 128 px for their reference batch of 64 (8 GPUs): half the channels, gamma = 0.0002 * side^2 / 64,
an EMA half-life of 64 * 10 / 32 kimg. All four train on batches of 64 in their papers (data.batch_size=64).
`tiny` (16 channels) is for CPU smoke tests. model.preset=auto picks by data.image_size (32 to 256);
every preset runs at every size the networks take (16 to 1024 px), and every value can be set on its own
(model.channel_base=..., model.r1_gamma=..., ...; null keeps the preset's).

Not taken from the authors' cifar configuration: it also turns off style mixing and path length
regularisation and uses D without residual connections; add model.style_mixing_prob=0 model.pl_weight=0 for the
first two.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gan_cli.errors import UserError

#: the image sides the networks take (powers of two from 16 to 1024)
SIZES = (16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Sizing:
    channel_base: int     # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int
    mapping_layers: int   # depth of the mapping network
    r1_gamma: float       # weight of the R1 penalty (0: off)
    mbstd_group: int      # samples per group of the minibatch standard deviation layer
    ema_kimg: float       # half-life of G's moving average, in thousands of images
    ema_rampup: float | None  # the half-life grows as this share of the images seen, up to ema_kimg (None: off)


PRESETS = {
    "cifar": Sizing(32768, 512, 2, 0.01, 32, 500.0, 0.05),
    "auto64": Sizing(16384, 512, 2, 0.0128, 4, 20.0, 0.05),
    "auto128": Sizing(16384, 512, 2, 0.0512, 4, 20.0, 0.05),
    "paper256": Sizing(16384, 512, 8, 1.0, 8, 20.0, None),
    "tiny": Sizing(256, 16, 2, 1.0, 4, 0.1, None),
}
#: model.preset=auto: the preset of each data.image_size
BY_SIZE = {32: "cifar", 64: "auto64", 128: "auto128", 256: "paper256"}


def sizing(preset: str, image_size: int, **settings) -> Sizing:
    """The preset's sizes (`auto`: the one for `image_size`) with the `settings` that are not None in their place.
    `ema_rampup` 0 turns the ramp-up off."""
    if image_size not in SIZES:
        raise UserError(f"model=stylegan2 draws square images of a power-of-two side from 16 to 1024 px "
                        f"({', '.join(map(str, SIZES))}), not {image_size}: set data.image_size to one of them "
                        "(the data is resized to it).")
    name = BY_SIZE.get(image_size) if preset == "auto" else preset
    if name is None:
        raise UserError(f"model.preset=auto has presets for data.image_size {', '.join(map(str, BY_SIZE))}, not "
                        f"{image_size}: name one for this size (model.preset={' | '.join(PRESETS)}), and set any "
                        "value on its own (model.channel_base=..., model.r1_gamma=...).")
    if name not in PRESETS:
        raise UserError(f"model.preset={preset} is not a StyleGAN2 preset: give auto (by data.image_size) or one of "
                        f"{', '.join(PRESETS)}.")
    chosen = dataclasses.replace(PRESETS[name], **{k: v for k, v in settings.items() if v is not None})
    if settings.get("ema_rampup") == 0:
        chosen = dataclasses.replace(chosen, ema_rampup=None)
    if chosen.channel_base < image_size:
        raise UserError(f"model.channel_base={chosen.channel_base} leaves no channels at {image_size} px (channels at "
                        f"side r are channel_base // r): give model.channel_base={image_size} or more.")
    return chosen
