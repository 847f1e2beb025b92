#!/usr/bin/env python
"""UNIT next to CycleGAN on the inverted-digits task of benchmarks/translation_learning.py.

    OMP_NUM_THREADS=1 python benchmarks/unit_vs_cyclegan.py                  # both models, 4 epochs each
    OMP_NUM_THREADS=1 python benchmarks/unit_vs_cyclegan.py --quick          # smoke run
    python benchmarks/unit_vs_cyclegan.py --models unit --epochs 6 model.lr=2e-4

This is a benchmark, not a test: it always exits 0.

The task, the measure and the table are translation_learning.py's (imported, not copied): domain A = MNIST5k
digits, domain B = inverted digits (255 - x), unpaired training folders (trainB holds the inversions of another
permutation of the digits), and the held-out L1 in [0, 1] pixel units of each direction's translation to its
truth (the inverted test digit, or the digit itself) over the 500 test digits, before and after training,
next to the trivial answers (identity, mean and median training target). UNIT is added to its table of tasks
as a third model, trained through gan-train's real path like the others.

Same budget for both: the same 1,000 training digits, batch 8, the same number of epochs (half constant, half
decaying learning rate), 32 px, seed 42, widths scaled down alike (CycleGAN: ngf 16, 3 residual blocks, PatchGAN
ndf 16; UNIT: dim 16, 3 residual blocks per encoder/decoder of which 1 shared, PatchGAN ndf 16). Each model keeps
its paper's losses, weights and learning rate (CycleGAN 2e-4, cycle 10, identity 0.5, pool 50; UNIT 1e-4 with
weight decay 1e-4, gan 1, recon 10, KL 0.01, cycle 10, cycle KL 0.01, undamped D loss). The per-epoch test L1 is
printed during each run, the grids (rows per direction: input, before, after, truth) are saved beside the runs.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import translation_learning as bench  # noqa: E402  (the task, the measure, the table)
from translation_learning import Direction, Task  # noqa: E402

UNIT_TASK = Task(
    "unit", "unpaired_folder", "unpaired",
    settings=["model.generator.dim=16", "model.generator.n_res=3", "model.generator.n_shared=1",
              "model.discriminator.ndf=16", "data.batch_size=8", "model.lr_constant_epochs=2",
              "model.lr_decay_epochs=2"],
    directions=[Direction("AtoB", "digit -> inverted (E_A+G_B)", "A", "B"),
                Direction("BtoA", "inverted -> digit (E_B+G_A)", "B", "A")],
)

_describe_others = bench.describe


def describe(cfg) -> str:
    """translation_learning's run description, with UNIT's own weights."""
    m = cfg.model
    if "recon_x_w" not in m:
        return _describe_others(cfg)
    g = {k: v for k, v in m.generator.items() if not k.startswith("_")}
    disc = {k: v for k, v in m.discriminator.items() if not k.startswith("_")}
    weights = {k: m[k] for k in ("gan_w", "recon_x_w", "recon_kl_w", "recon_x_cyc_w", "recon_kl_cyc_w", "latent_gan_w")}
    return (f"    generator {m.generator._target_.split('.')[-1]} {g}\n"
            f"    discriminator {m.discriminator._target_.split('.')[-1]} {disc}\n"
            f"    loss {cfg.loss._target_.split('.')[-1]}, {weights}, lr {m.lr}, Adam betas {list(m.optimizer.betas)} "
            f"weight decay {m.optimizer.weight_decay}, epochs {m.lr_constant_epochs} constant + {m.lr_decay_epochs} "
            f"decaying, batch {cfg.data.batch_size}, inference {m.inference}, seed {cfg.seed}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    bench.TASKS["unit"] = UNIT_TASK
    bench.describe = describe  # run_task prints each run's settings through it
    if not any(a == "--models" or a.startswith("--models=") for a in argv):
        argv = ["--models", "unit,cyclegan", *argv]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        from datetime import datetime

        argv += ["--out", str(Path("outputs/bench-unit") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))]
    return bench.main(argv)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
