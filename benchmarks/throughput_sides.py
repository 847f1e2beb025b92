"""The sides benchmarks/throughput.py measures for a case, each in this process: gan-train's real path (with the
default engine or engine=fast), the plain PyTorch loop doing the same work, the hardware's tight loop and the
reference implementations (benchmarks/throughput_limit.py)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import torch
from throughput_cases import Case
from throughput_limit import limit_gan, reference_dcgan, reference_translation, time_loop
from throughput_timing import make_timer, settle, sync


# --- config ----------------------------------------------------------------------------------------
def compose_train(overrides: list[str], output_dir: Path):
    """The config `gan-train <overrides>` runs with, writing into output_dir (as tests/conftest.py does)."""
    return compose_command("train", overrides, output_dir)


def compose_command(name: str, overrides: list[str], output_dir: Path | None = None):
    """The config of the command `gan-<name> <overrides>` (conf/<name>.yaml), without its `hydra` node; a training
    run's output_dir set to `output_dir`."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from gan_cli.config.schemas import register_schemas

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        if output_dir is not None:
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


# --- c. the tight loop and the references -----------------------------------------------------------
def measure_limit(case: Case, overrides: list[str], device: str, threads: int, min_seconds: float,
                  workdir: Path) -> tuple[float, str]:
    """images/s of the case's networks in the tight loop, and a note with its TFLOP/s."""
    torch.set_num_threads(threads)
    cfg = compose_train(overrides, workdir)
    step, flops, what = limit_gan(cfg, device, case.batch_size)
    rate = time_loop(step, device, min_seconds, case.batch_size)
    return rate, f"{what}; {flops / case.batch_size * rate / 1e12:.2f} TFLOP/s ({flops / 1e9:.1f} GFLOP a step)"


def measure_reference(case: Case, refs: Path, device: str, threads: int, min_seconds: float) -> tuple[float, str]:
    torch.set_num_threads(threads)
    if case.reference == "dcgan":
        step, what = reference_dcgan(refs, device, case.batch_size)
    else:
        size = int(next(o for o in case.overrides if o.startswith("data.crop_size=")).split("=")[1])
        step, what = reference_translation(refs, device, case.reference, size)
    return time_loop(step, device, min_seconds, case.batch_size, warmup=3), what
