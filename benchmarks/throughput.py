#!/usr/bin/env python
"""Training throughput (images/s) of gan-train against a plain PyTorch loop doing the same work.

    python benchmarks/throughput.py                 # cuda if available, else cpu
    python benchmarks/throughput.py --device cpu --quick
    python benchmarks/throughput.py --models cyclegan,pix2pix

For each model (DCGAN-64; the MLP GAN of Goodfellow et al.; CycleGAN at 128 px; pix2pix at 256 px) it
measures, in one process, a. gan-train's real path and b. a plain PyTorch loop over the same networks, data,
optimizers and loss objects doing per batch what the model's training_step does. Each side and its data are
described and defined in benchmarks/throughput_cases.py; the timing mechanics in benchmarks/throughput_timing.py.

Both sides time the same steady state: N whole batches, from the start of batch W (after W warm-up
batches) to the start of batch W+N (a callback's on_train_batch_start for gan-train), so start-up
(imports, config composition, building, the first batches) and end-of-epoch work (checkpoint, sample
grid, learning-rate schedules) are outside the timed window. The epoch holds exactly W+N+1 batches
(data.dataset.size for data=fake; as many images written for the folders), so no epoch boundary falls
inside it. Log steps (trainer.log_every_n_steps, 50 by default) fall inside the window in their
natural proportion for the MLP GAN (N is a multiple of 50); for the MLP GAN the first log step (which
pays one-time set-up) is a warm-up batch. The other models' windows hold no log step: their epochs are
shorter than 50 batches (a log step costs a few gradient norms, small next to a translation model's
batch on a CPU). Just before each window both sides run gc.collect(), so the full collection of the
objects left by start-up does not land in one side's window (see `throughput_timing.settle`), and the
whole run uses fixed malloc thresholds, so that page faults do not depend on which side ran before
(see `throughput_timing.steady_allocator`).

The translation models are slow on a CPU at batch 1, so their windows are 10 and 20 batches after 2 warm-up
batches, 3 repeats per side; --quick shortens every window and --models picks a subset. Other busy processes
slow the translation models far more than their share of the CPU (several times, at batch 1). How long a run
takes, and the measured figures: benchmarks/RESULTS.md#make-bench.

Measurements are repeated (a and b alternating, the order flipped every repeat) and the median is
reported, with the spread of the repeats: on a small shared machine the spread is often larger than
the 3% the target allows. The exit status is 0 whatever the ratio: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput_cases import Case, make_cases, run_overrides  # noqa: E402  (same folder)
from throughput_timing import make_timer, settle, steady_allocator, sync  # noqa: E402

TARGET = 0.97


# --- config ----------------------------------------------------------------------------------------
def compose_train(overrides: list[str], output_dir: Path):
    """The config `gan-train <overrides>` runs with, writing into output_dir (as tests/conftest.py does)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from gan_cli.config.schemas import register_schemas

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


# --- a. gan-train's path ---------------------------------------------------------------------------
def measure_gan_train(case: Case, overrides: list[str], device: str, threads: int, warmup: int, timed: int,
                      workdir: Path, show_progress: bool) -> float:
    from gan_cli.commands.train import build, log_config, startup_objects_frozen

    torch.set_num_threads(threads)
    cfg = compose_train(overrides, workdir)
    datamodule, model, trainer = build(cfg)
    timer = make_timer(warmup, timed, device, threads)
    trainer.callbacks.append(timer)
    log_config(trainer, cfg)  # as gan_cli.commands.train.train does before fitting
    # Lightning's TQDM progress bar writes to stdout: send it to /dev/null (it still renders every
    # refresh_rate batches, as for a user) so that the table stays readable.
    with contextlib.ExitStack() as stack:
        if not show_progress:
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        # the call gan_cli.commands.train.train makes (no checkpoint to resume from)
        stack.enter_context(startup_objects_frozen())
        trainer.fit(model, datamodule=datamodule, ckpt_path=None, weights_only=True)
    if timer.threads_seen != {threads}:
        print(f"  warning: torch threads during the gan-train window: {sorted(timer.threads_seen)}, "
              f"expected {threads}", flush=True)
    return timed * case.batch_size / timer.seconds


# --- b. the plain loop -----------------------------------------------------------------------------
def build_plain(case: Case, overrides: list[str], device: str, workdir: Path):
    """The plain loop's training step, networks (named as the model's attributes) and DataLoader, built with
    gan_cli.commands.train.build's seed and order (data, then the networks): the same initial weights as
    gan-train."""
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
