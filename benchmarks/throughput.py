#!/usr/bin/env python
"""Training throughput (images/s) of gan-train against a plain PyTorch loop doing the same work.

    python benchmarks/throughput.py                 # cuda if available, else cpu
    python benchmarks/throughput.py --device cpu --quick
    python benchmarks/throughput.py --models cyclegan,pix2pix

For each model (DCGAN-64; the MLP GAN of Goodfellow et al.; CycleGAN at 128 px; pix2pix at 256 px) it
measures, in one process:

  a. gan-train's real path: the config a user gets from `gan-train model=... data=... ...` (composed by
     Hydra from the packaged conf/, with the default callbacks: checkpoints, sample grid, RNG state and
     progress bar, and logger=tensorboard), built by `gan_cli.runner.build` and run by `trainer.fit`;
  b. a plain PyTorch loop over the same networks (instantiated from the same config nodes, in the same
     order, with the same seed: identical initial weights), the same Adam settings, the same loss objects
     (`gan_cli.losses`), the same DataModule's train_dataloader and batch size, doing per batch what the
     model's training_step does (with loss.d_steps=1):
       - DCGAN, MLP GAN (`GAN`): one D update on real + detached fake, then one G update with D frozen;
       - CycleGAN: one update of G_A and G_B together (adversarial, cycle and identity terms; D_A and D_B
         frozen), then one update of D_A and D_B together on fakes drawn from two ImagePool(50)s, the D
         loss halved (`gan_cli.nets.ImagePool`, weights initialised by `gan_cli.nets.norm.init_weights_`);
       - pix2pix: G(input); one D update on (input, target) vs (input, detached output), halved; then one
         G update on the adversarial term + 100 * L1, D frozen.
     The translation models' learning-rate schedules (LambdaLR) step only at epoch end, after the timed
     window, and start at factor 1, so the plain loops use the constant model.lr and have none.
     Checked by hand: from the same seed, both sides' weights after the same batches are bit-identical
     on a CPU (the plain loop draws the same random numbers in the same order, the GAN's fixed grid noise
     included).

The models train with their default networks and objectives: DCGAN and the MLP GAN on data=fake, batch 64;
CycleGAN (ResNet generator, 6 blocks at 128 px, ngf 64; PatchGAN, ndf 64; instance norm; lsgan) on
data=unpaired_folder with crop_size 128 (resized to 143, random crop and flip), pix2pix (U-Net 256, batch
norm, dropout; PatchGAN on 6 channels; nonsaturating) on data=paired_folder with crop_size 256 (286, crop
and flip), both at the papers' batch size 1 with data.num_workers=0. Their image folders are written by
the benchmark into a temporary folder: smooth random-pattern PNGs, 256x256 for trainA/ and trainB/,
512x256 side-by-side pairs for train/, one image per batch of the epoch.

Both sides time the same steady state: N whole batches, from the start of batch W (after W warm-up
batches) to the start of batch W+N (a callback's on_train_batch_start for gan-train), so start-up
(imports, config composition, building, the first batches) and end-of-epoch work (checkpoint, sample
grid, learning-rate schedules) are outside the timed window. The epoch holds exactly W+N+1 batches
(data.dataset.size for data=fake; as many images written for the folders), so no epoch boundary falls
inside it. Log steps (trainer.log_every_n_steps, 50 by default) fall inside the window in their
natural proportion for the MLP GAN (N is a multiple of 50); for the MLP GAN the first log step (which
pays one-time set-up) is a warm-up batch. The other models' windows hold no log step: their epochs are
shorter than 50 batches (a log step costs a few gradient norms, small next to a translation model's
0.7 to 2 s a batch on a CPU). Just before each window both sides run gc.collect(), so the full
collection of the objects left by start-up does not land in one side's window (see `settle`), and the
whole run uses fixed malloc thresholds, so that page faults do not depend on which side ran before
(see `steady_allocator`).

On a 2-core CPU a batch (one image) takes about 2.1 s for CycleGAN-128 and 0.7 s for pix2pix-256, so
their windows are 10 and 20 batches after 2 warm-up batches, 3 repeats per side: a full run of all four
models takes about 9 minutes there (DCGAN-64 about 2, the MLP GAN 2, CycleGAN 3, pix2pix 2), and
`--quick --models cyclegan,pix2pix` under a minute. --models picks a subset. Other busy processes slow
the translation models far more than their share of the CPU (several times, at batch 1).

Measurements are repeated (a and b alternating, the order flipped every repeat) and the median is
reported, with the spread of the repeats: on a small shared machine the spread is often larger than
the 3% the target allows. The exit status is 0 whatever the ratio: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

TARGET = 0.97

Step = Callable[[dict], None]  # one training step of the plain loop on one batch


@dataclass
class Case:
    key: str  # its name in --models
    name: str
    overrides: list[str]
    data: Callable[[Path, int], list[str]]  # provides `count` training images (files under a folder if needed)
    plain: Callable[..., tuple[Step, dict[str, nn.Module]]]  # builds the plain loop's networks and its step
    batch_size: int
    warmup: int  # batches before the timed window
    timed: int  # batches in the timed window
    quick_warmup: int
    quick_timed: int
    repeats: int  # default number of repeats per side
    results: dict[str, list[float]] = field(default_factory=lambda: {"gan-train": [], "plain": []})


def make_cases(device: str) -> list[Case]:
    trainer = "trainer=gpu" if device == "cuda" else "trainer=cpu"
    run = ["logger=tensorboard", "callbacks=default", trainer]
    common = ["data=fake", "data.batch_size=64", *run]
    translation = ["data.batch_size=1", "data.num_workers=0", *run]  # the papers' batch size
    return [
        Case("dcgan", "DCGAN-64", ["model=dcgan", *common, "data.image_size=64", "data.channels=3",
                                   "data.mean=[0.5,0.5,0.5]", "data.std=[0.5,0.5,0.5]",
                                   "model.generator.ngf=64", "model.discriminator.ndf=64"],
             fake_images, plain_gan, batch_size=64, warmup=2, timed=20, quick_warmup=1, quick_timed=3, repeats=3),
        Case("mlp", "MLP GAN (32px)", ["model=gan", *common, "data.image_size=32", "data.channels=1"],
             fake_images, plain_gan, batch_size=64, warmup=20, timed=200, quick_warmup=20, quick_timed=20,
             repeats=5),
        Case("cyclegan", "CycleGAN-128", ["model=cyclegan", "data=unpaired_folder", "data.crop_size=128",
                                          *translation],
             unpaired_images, plain_cyclegan, batch_size=1, warmup=2, timed=10,
             quick_warmup=1, quick_timed=2, repeats=3),
        Case("pix2pix", "pix2pix-256", ["model=pix2pix", "data=paired_folder", "data.crop_size=256", *translation],
             paired_images, plain_pix2pix, batch_size=1, warmup=2, timed=20,
             quick_warmup=1, quick_timed=2, repeats=3),
    ]


# --- data ------------------------------------------------------------------------------------------
def fake_images(folder: Path, count: int) -> list[str]:
    """data=fake: synthetic images in memory, no files."""
    return [f"data.dataset.size={count}"]


def write_pngs(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    """`count` smooth random colour patterns (8x8-pixel noise, enlarged bicubically), like photos to the
    PNG decoder and the resize, unlike white noise."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (8, 8 * width // height, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(folder / f"{i:05d}.png")


def unpaired_images(folder: Path, count: int) -> list[str]:
    """data=unpaired_folder: trainA/ and trainB/ with `count` 256x256 images each (the dataset is as long as
    its larger domain), like horse2zebra's."""
    for seed, domain in enumerate("AB"):
        write_pngs(folder / f"train{domain}", count, 256, 256, seed)
    return [f"data.root={folder}"]


def paired_images(folder: Path, count: int) -> list[str]:
    """data=paired_folder: train/ with `count` 512x256 images, A and B side by side, like facades'."""
    write_pngs(folder / "train", count, 512, 256, seed=2)
    return [f"data.root={folder}"]


# --- config ----------------------------------------------------------------------------------------
def compose_train(overrides: list[str], output_dir: Path):
    """The config `gan-train <overrides>` runs with, writing into output_dir (as tests/conftest.py does)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from gan_cli.schemas import register_schemas

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = str(output_dir)
    GlobalHydra.instance().clear()
    return cfg


def run_overrides(case: Case, warmup: int, timed: int, data_folder: Path) -> list[str]:
    """The case's overrides for one epoch of exactly warmup + timed + 1 batches (the timed window ends at
    the start of the last one), with the data for them written into data_folder where files are needed."""
    batches = warmup + timed + 1
    return [*case.overrides, *case.data(data_folder, case.batch_size * batches), "trainer.max_epochs=1",
            f"++trainer.limit_train_batches={batches}"]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def steady_allocator() -> None:
    """Give both sides the same memory allocator behaviour, whatever ran before them in this process.

    glibc's malloc adapts its thresholds to past frees: returned memory (large blocks, the top of the
    heap) goes back to the kernel, and memory taken again costs page faults that zero it. Which blocks
    are returned depends on the process's history, so the same loop can fault ~75k times a batch or not
    at all: pix2pix-256's plain loop ran ~12% faster right after a gan-train run than after another
    plain run, and the alternating repeats turned that into a bias. Fixed thresholds (blocks up to
    32 MiB from the heap, which is never trimmed) end that: after the first measurement neither side
    faults. No-op where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018  (musl and others have no mallopt)
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def settle(device: str) -> None:
    """Before a timed window: wait for the device and pay start-up's garbage-collection debt.

    Building a run leaves ~500k tracked Python objects (Hydra, Lightning, torch, TensorBoard); the first
    full (generation-2) collection after that takes ~0.2 s on this kind of CPU and would otherwise fall at a
    random batch of whichever window happens to trigger it. Both sides collect here, so both windows start
    with the same clean heap; the collections that the loops' own allocations cause are still timed.
    """
    sync(device)
    gc.collect()


# --- a. gan-train's path ---------------------------------------------------------------------------
def make_timer(warmup: int, timed: int, device: str, threads: int):
    import pytorch_lightning as pl

    class WindowTimer(pl.Callback):
        """Wall time from the start of batch `warmup` to the start of batch `warmup + timed`."""

        def __init__(self) -> None:
            self.start = self.end = None
            self.threads_seen: set[int] = set()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == warmup:
                settle(device)
                self.start = time.perf_counter()
            elif batch_idx == warmup + timed:
                sync(device)
                self.end = time.perf_counter()
            if warmup <= batch_idx <= warmup + timed:
                self.threads_seen.add(torch.get_num_threads())

        @property
        def seconds(self) -> float:
            if self.start is None or self.end is None:
                raise RuntimeError("the timed window was not reached: fewer batches ran than expected")
            return self.end - self.start

    return WindowTimer()


def measure_gan_train(case: Case, overrides: list[str], device: str, threads: int, warmup: int, timed: int,
                      workdir: Path, show_progress: bool) -> float:
    from gan_cli.runner import build, log_config, startup_objects_frozen

    torch.set_num_threads(threads)
    cfg = compose_train(overrides, workdir)
    datamodule, model, trainer = build(cfg)
    timer = make_timer(warmup, timed, device, threads)
    trainer.callbacks.append(timer)
    log_config(trainer, cfg)  # as runner.train does before fitting
    # Lightning's TQDM progress bar writes to stdout: send it to /dev/null (it still renders every
    # refresh_rate batches, as for a user) so that the table stays readable.
    with contextlib.ExitStack() as stack:
        if not show_progress:
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        # the call runner.train makes (no checkpoint to resume from)
        stack.enter_context(startup_objects_frozen())
        trainer.fit(model, datamodule=datamodule, ckpt_path=None, weights_only=True)
    if timer.threads_seen != {threads}:
        print(f"  warning: torch threads during the gan-train window: {sorted(timer.threads_seen)}, "
              f"expected {threads}", flush=True)
    return timed * case.batch_size / timer.seconds


# --- b. the plain loop -----------------------------------------------------------------------------
def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on `loss`, as the models' manual optimization does it."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def frozen(*nets: nn.Module):
    """The nets' parameters without gradients, as LightningModule.toggle_optimizer leaves the parameters
    of the other optimizer while one network (or pair of networks) is updated."""
    params = [p for net in nets for p in net.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def plain_gan(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """GAN.training_step with loss.d_steps=1: one D update on real + detached fake, then one G update on
    fresh noise with D's parameters frozen. Networks built in runner.build's order: G, then D."""
    from hydra.utils import instantiate

    generator = instantiate(cfg.model.generator).to(device).train()
    discriminator = instantiate(cfg.model.discriminator).to(device).train()
    loss = instantiate(cfg.loss)
    make_optimizer = instantiate(cfg.model.optimizer)  # Adam, betas (0.5, 0.999)
    opt_g = make_optimizer(generator.parameters(), lr=cfg.model.g_lr or cfg.model.lr)
    opt_d = make_optimizer(discriminator.parameters(), lr=cfg.model.d_lr or cfg.model.lr)
    latent_dim = generator.latent_dim
    torch.randn(cfg.model.num_samples, latent_dim)  # as GAN's fixed sample-grid noise: the same noise from here on

    def step(batch: dict) -> None:
        real = batch["image"].to(device)
        n = real.size(0)
        # D: ascend V(D, G) on real images and detached fakes
        with torch.no_grad():
            fake = generator(torch.randn(n, latent_dim, device=device))
        update(opt_d, loss.d_loss(discriminator(real), discriminator(fake)))
        loss.after_d_step(discriminator)
        # G: descend the generator loss on fresh noise, D frozen
        with frozen(discriminator):
            update(opt_g, loss.g_loss(discriminator(generator(torch.randn(n, latent_dim, device=device)))))

    return step, {"generator": generator, "discriminator": discriminator}


def translation_parts(cfg, device: str, generators: int, discriminators: int):
    """What a TranslationModel builds: `generators` networks from the model's generator node, then
    `discriminators` from its discriminator node (both `_partial_`), init_weights_ on each in that order,
    the loss, and one Adam over all generators and one over all discriminators (configure_optimizers).

    The learning rate is model.lr: configure_optimizers' LambdaLR schedules start at factor 1 and step only
    at epoch end (TranslationModel.on_train_epoch_end), after the timed window, so the loop has none.
    """
    from hydra.utils import instantiate

    from gan_cli.nets.norm import init_weights_

    make_g, make_d = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
    gs = [make_g() for _ in range(generators)]
    ds = [make_d() for _ in range(discriminators)]
    for net in gs + ds:
        init_weights_(net, cfg.model.init, cfg.model.init_gain)  # on the CPU, as in the model's constructor
        net.to(device).train()
    make_optimizer = instantiate(cfg.model.optimizer)  # Adam, betas (0.5, 0.999)
    opt_g = make_optimizer(itertools.chain(*(g.parameters() for g in gs)), lr=cfg.model.lr)
    opt_d = make_optimizer(itertools.chain(*(d.parameters() for d in ds)), lr=cfg.model.lr)
    return gs, ds, instantiate(cfg.loss), opt_g, opt_d


def halved_d_loss(cfg, loss, critic: Callable, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """TranslationModel.discriminator_loss for a loss without penalty: d_loss_weight (1/2) * (real term
    + term on the detached fake)."""
    real_scores, fake_scores = critic(real), critic(fake.detach())
    return cfg.model.d_loss_weight * (loss.d_real_loss(real_scores) + loss.d_fake_loss(fake_scores))


def plain_cyclegan(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """CycleGAN.training_step: the generators first (adversarial, cycle and identity terms; discriminators
    frozen), then both discriminators on fakes drawn from the two image pools."""
    from gan_cli.nets import ImagePool

    (G_A, G_B), (D_A, D_B), loss, opt_g, opt_d = translation_parts(cfg, device, 2, 2)
    lambda_A, lambda_B, lambda_idt = cfg.model.lambda_A, cfg.model.lambda_B, cfg.model.lambda_identity
    fake_A_pool, fake_B_pool = ImagePool(cfg.model.pool_size), ImagePool(cfg.model.pool_size)

    def step(batch: dict) -> None:
        real_A, real_B = batch["A"].to(device), batch["B"].to(device)
        with frozen(D_A, D_B):
            fake_B = G_A(real_A)
            cycle_A = lambda_A * F.l1_loss(G_B(fake_B), real_A)
            fake_A = G_B(real_B)
            cycle_B = lambda_B * F.l1_loss(G_A(fake_A), real_B)
            idt_A = lambda_B * lambda_idt * F.l1_loss(G_A(real_B), real_B)
            idt_B = lambda_A * lambda_idt * F.l1_loss(G_B(real_A), real_A)
            update(opt_g, loss.g_loss(D_A(fake_B)) + loss.g_loss(D_B(fake_A)) + cycle_A + cycle_B + idt_A + idt_B)
        d_A = halved_d_loss(cfg, loss, D_A, real_B, fake_B_pool.query(fake_B))
        d_B = halved_d_loss(cfg, loss, D_B, real_A, fake_A_pool.query(fake_A))
        update(opt_d, d_A + d_B)
        loss.after_d_step(D_A)
        loss.after_d_step(D_B)

    return step, {"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B}


def plain_pix2pix(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """Pix2Pix.training_step: G(input); D on (input, target) vs (input, detached output); then G on the
    adversarial term of D(input, output) + lambda_L1 * L1, D frozen."""
    (G,), (D,), loss, opt_g, opt_d = translation_parts(cfg, device, 1, 1)
    lambda_L1 = cfg.model.lambda_L1

    def step(batch: dict) -> None:
        real_A, real_B = batch["A"].to(device), batch["B"].to(device)
        fake_B = G(real_A)

        def critic(outputs: torch.Tensor) -> torch.Tensor:  # D sees the input and an output together
            return D(torch.cat([real_A, outputs], dim=1))

        update(opt_d, halved_d_loss(cfg, loss, critic, real_B, fake_B))
        loss.after_d_step(D)
        with frozen(D):
            update(opt_g, loss.g_loss(critic(fake_B)) + lambda_L1 * F.l1_loss(fake_B, real_B))

    return step, {"G": G, "D": D}


def build_plain(case: Case, overrides: list[str], device: str, workdir: Path):
    """The plain loop's training step, networks (named as the model's attributes) and DataLoader, built
    with runner.build's seed and order (data, then the networks): the same initial weights as gan-train."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    cfg = compose_train(overrides, workdir)
    assert cfg.loss.d_steps == 1, "the plain loops do one D and one G update per batch"
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    step, nets = case.plain(cfg, device)
    datamodule.setup("fit")
    return step, nets, datamodule.train_dataloader()


def measure_plain(case: Case, overrides: list[str], device: str, threads: int, warmup: int, timed: int,
                  workdir: Path) -> float:
    torch.set_num_threads(threads)
    step, _, loader = build_plain(case, overrides, device, workdir)
    start = end = None
    batches = iter(loader)
    for i in range(warmup + timed + 1):
        batch = next(batches)
        if i == warmup:
            settle(device)
            start = time.perf_counter()
        elif i == warmup + timed:
            sync(device)
            end = time.perf_counter()
            break
        step(batch)
    assert torch.get_num_threads() == threads
    return timed * case.batch_size / (end - start)


# --- main ------------------------------------------------------------------------------------------
MODELS = ("dcgan", "mlp", "cyclegan", "pix2pix")  # the keys of make_cases, in its order


def rate(images_per_s: float) -> str:
    """1 decimal, or 3 below 10 images/s (the translation models on a CPU)."""
    return f"{images_per_s:.1f}" if images_per_s >= 10 else f"{images_per_s:.3f}"


def quiet_frameworks() -> None:
    """Keep the table readable: no Lightning banners, model summaries or dataloader-worker advice."""
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch", "gan_cli"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_case(case: Case, args: argparse.Namespace, tmp: Path) -> None:
    """All repeats of one case, gan-train and plain alternating (the order flipped every repeat), into
    case.results."""
    warmup = case.quick_warmup if args.quick else case.warmup
    timed = case.quick_timed if args.quick else case.timed
    repeats = args.repeats or (1 if args.quick else case.repeats)
    print(f"{case.name}: batch {case.batch_size}, {warmup} warm-up + {timed} timed batches, "
          f"{repeats} repeat(s) per side", flush=True)
    began = time.perf_counter()
    overrides = run_overrides(case, warmup, timed, tmp / f"{case.key}_data")
    for r in range(repeats):
        order = ("gan-train", "plain") if r % 2 == 0 else ("plain", "gan-train")
        for side in order:
            workdir = tmp / f"{case.key}_{side}_{r}"
            if side == "gan-train":
                value = measure_gan_train(case, overrides, args.device, args.threads, warmup, timed, workdir,
                                          args.show_progress)
            else:
                value = measure_plain(case, overrides, args.device, args.threads, warmup, timed, workdir)
            shutil.rmtree(workdir, ignore_errors=True)  # the run's checkpoint: 0.7 GB for pix2pix
            case.results[side].append(value)
            print(f"  repeat {r + 1}/{repeats}  {side:<9}  {rate(value):>9} images/s", flush=True)
        pair = case.results["gan-train"][-1] / case.results["plain"][-1]
        print(f"  repeat {r + 1}/{repeats}  ratio of this pair: {pair:.3f}", flush=True)
    print(f"  {case.name} took {time.perf_counter() - began:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a very short run (a smoke check, noisy numbers)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="measurements per side (default: 5 for the MLP GAN, 3 for the others; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch.set_num_threads for every measurement (default: %(default)s)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: %(default)s")
    parser.add_argument("--show-progress", action="store_true",
                        help="let the progress bar write to the terminal (by default it renders into /dev/null)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    if not wanted or wanted - set(MODELS):
        parser.error(f"--models: choose from {', '.join(MODELS)}")
    cases = [c for c in make_cases(args.device) if c.key in wanted]

    import pytorch_lightning as pl

    quiet_frameworks()  # after the import: pytorch_lightning sets its logger's level when imported

    steady_allocator()
    torch.set_num_threads(args.threads)
    dev_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    print(f"gan-cli training throughput: device={args.device} ({dev_name}), torch threads={args.threads}, "
          f"cpus={os.cpu_count()}, torch {torch.__version__}, pytorch_lightning {pl.__version__}, "
          f"{'quick run' if args.quick else 'full run'}")
    if hasattr(os, "getloadavg"):
        print(f"load average at start: {os.getloadavg()[0]:.2f} (another busy process skews the numbers)")
    print(flush=True)

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gan-cli-bench-") as tmp:
        for case in cases:
            run_case(case, args, Path(tmp))

    print()
    header = (f"{'model':<16} {'images/s gan-train':>18} {'images/s plain':>15} {'ratio':>7} {'spread':>7}   "
              f"target ratio >= {TARGET}")
    print(header)
    print("-" * len(header))
    for case in cases:
        framework = statistics.median(case.results["gan-train"])
        plain = statistics.median(case.results["plain"])
        ratio = framework / plain
        # the larger relative range (max - min) / median of the two sides' repeats: the noise level
        spread = max((max(v) - min(v)) / statistics.median(v) for v in case.results.values())
        verdict = "meets the target" if ratio >= TARGET else "BELOW the target"
        if abs(ratio - TARGET) < spread:
            verdict += " (within the noise)"
        spread_text = f"{spread:>6.1%}" if len(case.results["plain"]) > 1 else f"{'-':>6}"
        print(f"{case.name:<16} {rate(framework):>18} {rate(plain):>15} {ratio:>7.3f} {spread_text}   {verdict}")
    print(f"\nimages/s: medians of the repeats; ratio = gan-train / plain; spread = largest (max - min) / median "
          f"of one side's repeats.\ntotal {time.perf_counter() - began:.0f} s"
          + (f"; load average at end: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
