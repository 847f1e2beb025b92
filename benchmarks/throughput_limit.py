"""What the hardware allows for a case's networks, and the reference implementations users would otherwise clone:
loops timed for as long as a window needs, beside benchmarks/throughput.py's gan-train and plain-loop sides.

- `limit_gan`: the GAN step (one D and one G update) on a batch already on the device, in a tight loop with bf16
  autocast (where the device has bf16) and channels-last weights; on a GPU the whole step, optimizers included
  (capturable Adam), is captured once in a CUDA graph and replayed: the practical limit. Its FLOPs per step are
  counted with torch's FlopCounterMode, so the table shows TFLOP/s.
- `reference_dcgan`: the DCGAN of pytorch/examples (its Generator, Discriminator and weights_init read from its
  dcgan/main.py), trained as its script does (BCELoss on D's sigmoid, fp32, cudnn.benchmark), data on the device.
- `reference_translation`: junyanz/pytorch-CycleGAN-and-pix2pix's own CycleGANModel / Pix2PixModel with its own
  option defaults, timed per `optimize_parameters()` on tensors already on the device.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

Loop = Callable[[], None]  # one training step of a loop whose data is already on the device


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_loop(step: Loop, device: str, min_seconds: float, images_per_step: int, warmup: int = 5) -> float:
    """images/s of `step` over a window of at least `min_seconds` (whole steps, after `warmup` of them)."""
    for _ in range(warmup):
        step()
    sync(device)
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if steps % 5 == 0:
            sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return steps * images_per_step / elapsed


def has_bf16(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def limit_gan(cfg, device: str, batch_size: int) -> tuple[Loop, float, str]:
    """(step, FLOPs per step, a description) of the tight loop over the case's GAN networks and loss."""
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    generator = instantiate(cfg.model.generator).to(device).to(memory_format=torch.channels_last).train()
    discriminator = instantiate(cfg.model.discriminator).to(device).to(memory_format=torch.channels_last).train()
    loss = instantiate(cfg.loss)
    on_gpu, bf16 = device == "cuda", has_bf16(device)
    adam = dict(lr=cfg.model.lr, betas=(0.5, 0.999), capturable=on_gpu)
    opt_g = torch.optim.Adam(generator.parameters(), **adam)
    opt_d = torch.optim.Adam(discriminator.parameters(), **adam)
    shape = (batch_size, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    real = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=torch.channels_last)
    noise = torch.empty(batch_size, generator.latent_dim, device=device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            fake = generator(noise.normal_())
            d_loss = loss.d_loss(discriminator(real), discriminator(fake.detach()))
        opt_d.zero_grad(set_to_none=False)
        d_loss.backward()
        opt_d.step()
        discriminator.requires_grad_(False)  # G's update: no gradients for D's weights (decided at capture)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            g_loss = loss.g_loss(discriminator(fake))
        opt_g.zero_grad(set_to_none=False)
        g_loss.backward()
        opt_g.step()
        discriminator.requires_grad_(True)

    with FlopCounterMode(display=False) as counter:
        step()
    what = f"tight loop, {'bf16' if bf16 else 'fp32'} + channels-last"
    if not on_gpu:
        return step, counter.get_total_flops(), what
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture (cuDNN picks its kernels, Adam makes its state)
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay, counter.get_total_flops(), what + ", whole step in one CUDA graph"


# --- reference implementations ---------------------------------------------------------------------
def reference_dcgan(refs: Path, device: str, batch_size: int) -> tuple[Loop, str]:
    """pytorch/examples' DCGAN-64 step, with its networks and initialisation from refs/examples/dcgan/main.py."""
    script = refs / "examples" / "dcgan" / "main.py"
    tree = ast.parse(script.read_text())
    names = ("Generator", "Discriminator", "weights_init")
    wanted = [node for node in tree.body if getattr(node, "name", None) in names]
    space = {"nn": nn, "torch": torch, "nz": 100, "ngf": 64, "ndf": 64, "nc": 3}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(script), "exec"), space)
    torch.backends.cudnn.benchmark = True  # as the script sets it
    generator, discriminator = space["Generator"](1).to(device), space["Discriminator"](1).to(device)
    generator.apply(space["weights_init"])
    discriminator.apply(space["weights_init"])
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch_size, 3, 64, 64, device=device) * 2 - 1
    ones, zeros = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)

    def step() -> None:  # the script's loop body
        discriminator.zero_grad()
        criterion(discriminator(real), ones).backward()
        fake = generator(torch.randn(batch_size, 100, 1, 1, device=device))
        criterion(discriminator(fake.detach()), zeros).backward()
        opt_d.step()
        generator.zero_grad()
        criterion(discriminator(fake), ones).backward()
        opt_g.step()

    return step, "pytorch/examples dcgan/main.py, fp32"


def reference_translation(refs: Path, device: str, model: str, size: int) -> tuple[Loop, str]:
    """junyanz's CycleGANModel ("cycle_gan") or Pix2PixModel ("pix2pix") from refs/cyclegan, batch 1."""
    root = str(refs / "cyclegan")
    if root not in sys.path:
        sys.path.insert(0, root)
    # their models package imports only `get_option_setter` from their data package, which needs their datasets
    sys.modules.setdefault("data", types.SimpleNamespace(get_option_setter=lambda name: lambda parser, train: parser))
    import models
    from options.train_options import TrainOptions

    parser = models.get_option_setter(model)(TrainOptions().initialize(argparse.ArgumentParser()), True)
    opt = parser.parse_args(["--dataroot", "unused", "--model", model, "--load_size", str(size), "--crop_size",
                             str(size), "--name", "bench", "--checkpoints_dir", tempfile.mkdtemp()])
    opt.isTrain, opt.gpu_ids, opt.device = True, [0] if device == "cuda" else [], torch.device(device)
    torch.backends.cudnn.benchmark = True
    with contextlib.redirect_stdout(io.StringIO()):  # their network summaries
        reference = models.create_model(opt)
        reference.setup(opt)
    generator = torch.Generator().manual_seed(0)
    pairs = [{"A": torch.rand(1, 3, size, size, generator=generator) * 2 - 1,
              "B": torch.rand(1, 3, size, size, generator=generator) * 2 - 1, "A_paths": ["a"], "B_paths": ["b"]}
             for _ in range(4)]
    calls = iter(range(10**12))

    def step() -> None:
        reference.set_input(pairs[next(calls) % 4])
        reference.optimize_parameters()

    return step, f"junyanz {model} ({opt.netG}), its own optimize_parameters"
