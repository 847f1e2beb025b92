"""OmegaConf resolvers the configs use for values that follow from other values.

    ${gan_cli.add:a,b}               a + b (e.g. a run as long as its learning-rate schedule)
    ${gan_cli.log2:256}              8: the depth of a U-Net that reduces 256 px to 1 px
    ${gan_cli.resnet_blocks:256}     9 residual blocks at 256 px and above, 6 below (Zhu et al. 2017)
    ${gan_cli.load_size:256}         286: the resize before a random crop, 286/256 of the crop
    ${gan_cli.by_size:64,256,1024}   256 for images of 32 px or less, else 1024 (SNGAN's two network sizes)
    ${gan_cli.fast_precision:auto}   bf16-mixed where the device trained on has bf16, else 32-true
    ${gan_cli.sqlite_uri:outputs/x.db}  sqlite:////abs/outputs/x.db: MLflow's local store
    ${gan_cli.abspath:outputs/x}     /abs/outputs/x (relative to the working folder)
    ${gan_cli.wandb_offline:}        true unless a W&B account is set up (WANDB_API_KEY, `wandb login`, WANDB_MODE)
"""

from __future__ import annotations

import math
import os

from omegaconf import OmegaConf


def _log2(n: int) -> int:
    if n < 1 or 2 ** round(math.log2(n)) != n:
        raise ValueError(f"{n} is not a power of two")
    return round(math.log2(n))


def _fast_precision(accelerator: str) -> str:
    """bf16-mixed where `accelerator` (the trainer's: auto, gpu, cuda, cpu) computes in bf16 natively (Ampere and
    later GPUs; CPUs with AVX512-BF16 or AMX, where oneDNN runs bf16 convolutions), else 32-true (emulated bf16
    is slower than fp32)."""
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
        else "32-true"


def _sqlite_uri(path: str) -> str:
    """An SQLAlchemy URI of the SQLite file `path` (relative to the working folder)."""
    return f"sqlite:///{os.path.abspath(os.path.expanduser(path))}"


def _wandb_offline() -> bool:
    """W&B runs offline (kept on disk, `wandb sync` uploads them) unless the user has set up an account: never
    does training need one."""
    import netrc

    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (OSError, netrc.NetrcParseError):
        return True


RESOLVERS = {
    "gan_cli.add": lambda *values: sum(values),
    "gan_cli.log2": _log2,
    "gan_cli.resnet_blocks": lambda size: 9 if int(size) >= 256 else 6,
    "gan_cli.load_size": lambda crop: round(int(crop) * 286 / 256),
    "gan_cli.by_size": lambda size, small, large: small if int(size) <= 32 else large,
    "gan_cli.fast_precision": _fast_precision,
    "gan_cli.sqlite_uri": _sqlite_uri,
    "gan_cli.abspath": lambda path: os.path.abspath(os.path.expanduser(path)),
    "gan_cli.wandb_offline": _wandb_offline,
}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, function, replace=True)
