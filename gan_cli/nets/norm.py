"""Normalization layers and weight initialization shared by the pix2pix / CycleGAN networks.

Follows junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py: get_norm_layer, init_weights).
"""

from __future__ import annotations

from torch import nn

NORM_KINDS = ("batch", "instance", "none")
INIT_KINDS = ("normal", "xavier", "kaiming", "orthogonal")


def _check_norm(kind: str) -> None:
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm {kind!r}; valid kinds: {', '.join(NORM_KINDS)}")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A 2-d normalization layer over `channels` feature maps.

    Instance norm has no learned scale/shift and no running statistics, as in the reference
    (so it normalizes with the statistics of each image in eval mode too).
    """
    _check_norm(kind)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def conv_bias(kind: str) -> bool:
    """Whether a convolution followed by this norm carries a bias.

    Batch norm subtracts the mean and adds its own shift, so a bias before it is redundant. The reference
    gives convolutions a bias with instance norm (whose affine=False leaves no shift); with no norm at all
    a bias is the only shift left, so they get one here too.
    """
    _check_norm(kind)
    return kind != "batch"


def init_weights_(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialize conv / linear weights in place (biases to 0); batch-norm scales from N(1, gain).

    kind: normal = N(0, gain); xavier = xavier_normal(gain); kaiming = kaiming_normal(a=0, fan_in);
    orthogonal = orthogonal(gain). Returns the module.
    """
    if kind not in INIT_KINDS:
        raise ValueError(f"unknown init {kind!r}; valid kinds: {', '.join(INIT_KINDS)}")
    for m in module.modules():
        # _ConvNd covers Conv1d/2d/3d and the transposed convolutions, like the reference's name match on 'Conv'
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module
