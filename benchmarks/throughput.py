#!/usr/bin/env python
"""Training throughput (images/s) of gan-train, with its default engine and with engine=fast, beside a plain
PyTorch loop doing the same work, the hardware's practical limit and the reference implementations.

    python benchmarks/throughput.py                        # cuda if available, else cpu
    python benchmarks/throughput.py --device cpu --quick
    python benchmarks/throughput.py --models cyclegan,pix2pix --refs refs/

Per case (DCGAN-64; on a GPU also at batch 256; the MLP GAN of Goodfellow et al.; CycleGAN; pix2pix) it measures,
in one process, alternating the order every repeat:

  eager      gan-train's real path with the default engine (benchmarks/throughput_cases.py says what it runs);
  fast       the same with engine=fast (bf16 where the device has it, channels-last, and on a GPU compiled
             networks with CUDA graphs, fused Adam, data kept on the GPU); on a GPU, for the cases where bf16
             must pay, also `fast fp32` (engine=fast trainer.precision=32-true);
  captured   on a GPU, for gan, dcgan, pix2pix and cyclegan: engine=fast engine.capture_step=true, the whole
             update of a step (D's and G's, optimizers included) captured once in a CUDA graph and replayed;
  plain      a plain eager PyTorch loop over the same networks, data, optimizers and loss objects;
  limit      for the GAN cases, the same networks in a tight loop on a batch already on the device, bf16 and
             channels-last, on a GPU captured whole in one CUDA graph: the practical limit, with its TFLOP/s;
  reference  with --refs DIR: pytorch/examples' DCGAN (DIR/examples/dcgan/main.py) and junyanz's CycleGAN and
             pix2pix (DIR/cyclegan: its models, options and util folders), their own training steps.

The gan-train and plain sides time the same steady state: whole batches from the start of batch W to the start of
batch W+N of an epoch of W+N+1 batches, so start-up and end-of-epoch work stay outside (throughput_timing.py says
how garbage collection and malloc are kept out of the comparison). N is the case's window, made longer where the
fastest side would finish it in under --min-seconds (2 s by default), so that every window lasts at least that;
the limit and reference loops run for at least --min-seconds too. Log steps fall in the windows in their natural
proportion where N reaches trainer.log_every_n_steps (50). The time from the command to the first training step
(a real `gan-train` process) is printed for both engines, and with --default-job the time of `make train`'s job
from the command to its last checkpoint.

The medians of the repeats are reported with their spread ((max - min) / median). Figures:
benchmarks/RESULTS.md#make-bench. The exit status is 0 whatever the ratios: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput_cases import Case, make_cases, run_overrides  # noqa: E402  (same folder)
from throughput_report import report  # noqa: E402
from throughput_sides import (  # noqa: E402
    compose_train,
    measure_gan_train,
    measure_limit,
    measure_plain,
    measure_reference,
)
from throughput_startup import seconds_of_default_job, seconds_to_first_step  # noqa: E402
from throughput_timing import steady_allocator  # noqa: E402

__all__ = ["compose_train", "main", "quiet_frameworks"]  # what the other benchmarks import from here


# --- main ---------------------------------------------------------------------------------------------
MODELS = ("dcgan", "dcgan256", "mlp", "vae", "cyclegan", "pix2pix")  # the keys of make_cases (dcgan256 on a GPU only)


def quiet_frameworks() -> None:
    """Keep the table readable: no Lightning banners, model summaries or dataloader-worker advice."""
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch", "gan_cli", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def sides(case: Case, args: argparse.Namespace) -> dict[str, list[str]]:
    """side -> the overrides added to the case's for the gan-train sides (None for the loops)."""
    chosen = {"eager": [], "fast": ["engine=fast"], "plain": None}
    if case.fp32_too and args.device == "cuda":
        chosen["fast fp32"] = ["engine=fast", "trainer.precision=32-true"]
    if case.capture and args.device == "cuda":
        chosen["captured"] = ["engine=fast", "engine.capture_step=true"]
    if case.limit:
        chosen["limit"] = None
    if case.reference and args.refs:
        chosen["reference"] = None
    return chosen


def window(case: Case, args: argparse.Namespace, tmp: Path) -> tuple[int, int]:
    """(warm-up, timed) batches of the gan-train and plain windows: the case's, or more where the limit loop (or
    the plain loop) would take under --min-seconds for them; on a GPU at least 20 warm-up batches, in which the
    fast engine compiles and records its CUDA graphs."""
    warmup = case.quick_warmup if args.quick else case.warmup
    timed = case.quick_timed if args.quick else case.timed
    if args.device == "cuda":
        warmup = max(warmup, 20)
    if args.quick:
        return warmup, timed
    overrides = run_overrides(case, 1) + case.data(tmp / f"{case.key}_data", case.batch_size * (warmup + timed + 1))
    if case.limit:
        rate, _ = measure_limit(case, overrides, args.device, args.threads, 1.0, tmp / "calibration")
    else:
        rate = measure_plain(case, overrides, args.device, args.threads, 1, 3, tmp / "calibration")
    timed = max(timed, math.ceil(args.min_seconds * rate / case.batch_size))
    if case.max_batches is not None:  # a dataset of fixed size: the window stays within its one epoch
        timed = min(timed, case.max_batches - warmup - 1)
    return warmup, timed


def run_case(case: Case, args: argparse.Namespace, tmp: Path) -> None:
    """All repeats of every side of one case, the order flipped every repeat, into case.results."""
    began = time.perf_counter()
    warmup, timed = window(case, args, tmp)
    repeats = args.repeats or (1 if args.quick else 5 if args.device == "cuda" else case.repeats)
    chosen = sides(case, args)
    print(f"{case.name}: batch {case.batch_size}, {warmup} warm-up + {timed} timed batches, {repeats} repeat(s) of "
          f"{', '.join(chosen)}", flush=True)
    batches = warmup + timed + 1
    overrides = run_overrides(case, batches) + case.data(tmp / f"{case.key}_data", case.batch_size * batches)
    min_seconds = 0.2 if args.quick else args.min_seconds
    for r in range(repeats):
        for side in (list(chosen) if r % 2 == 0 else list(reversed(chosen))):
            workdir = tmp / f"{case.key}_{side}_{r}".replace(" ", "_")
            if chosen[side] is not None:
                value = measure_gan_train(case, [*overrides, *chosen[side]], args.device, args.threads, warmup,
                                          timed, workdir, args.show_progress)
            elif side == "plain":
                value = measure_plain(case, overrides, args.device, args.threads, warmup, timed, workdir)
            elif side == "limit":
                value, case.notes[side] = measure_limit(case, overrides, args.device, args.threads, min_seconds,
                                                        workdir)
            else:
                value, case.notes[side] = measure_reference(case, args.refs, args.device, args.threads, min_seconds)
            shutil.rmtree(workdir, ignore_errors=True)  # the run's checkpoint: 0.7 GB for pix2pix
            case.results.setdefault(side, []).append(value)
            print(f"  repeat {r + 1}/{repeats}  {side:<10} {value:>10.3f} images/s", flush=True)
    if not args.quick or args.first_step:
        for side in ("eager", "fast"):
            case.notes[f"first step {side}"] = f"{seconds_to_first_step([*overrides, *chosen[side]]):.1f} s"
    print(f"  {case.name} took {time.perf_counter() - began:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a very short run (a smoke check, noisy numbers)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="measurements per side (default: 5 on a GPU; on a CPU 5 for the MLP GAN, 3 for the "
                             "others; 1 with --quick)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="the shortest timed window (default: 2)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch.set_num_threads for every measurement (default: %(default)s)")
    parser.add_argument("--models", default=None, help=f"comma-separated subset of: {', '.join(MODELS)}")
    parser.add_argument("--refs", type=Path, default=None,
                        help="a folder with examples/dcgan/main.py (pytorch/examples) and cyclegan/ (junyanz's "
                             "models, options, util): measure the reference implementations too")
    parser.add_argument("--first-step", action="store_true", help="with --quick: time the first step too")
    parser.add_argument("--default-job", action="store_true",
                        help="also time make train's job, both engines, from the command to its last checkpoint")
    parser.add_argument("--show-progress", action="store_true",
                        help="let the progress bar write to the terminal (by default it renders into /dev/null)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    available = make_cases(args.device)
    wanted = {m.strip() for m in (args.models or ",".join(c.key for c in available)).split(",") if m.strip()}
    if not wanted or wanted - {c.key for c in available}:
        parser.error(f"--models: choose from {', '.join(c.key for c in available)}")
    if args.refs is not None and not (args.refs / "examples" / "dcgan" / "main.py").is_file() \
            and not (args.refs / "cyclegan" / "models").is_dir():
        parser.error(f"--refs {args.refs}: neither examples/dcgan/main.py nor cyclegan/models/ is there")
    cases = [c for c in available if c.key in wanted]

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
    jobs = {}
    if args.default_job:
        jobs = {"eager": seconds_of_default_job([]), "fast": seconds_of_default_job(["engine=fast"])}
    print()
    report(cases, args.device, jobs)
    print(f"\ntotal {time.perf_counter() - began:.0f} s"
          + (f"; load average at end: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
