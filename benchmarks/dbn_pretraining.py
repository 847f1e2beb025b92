"""What greedy pre-training is worth: model=dbn's fine-tuned network against the same network trained from random
initialisation, side by side, on mnist_5k's 500 held-out digits (issue 7).

Each seed is one `gan-train model=dbn data=mnist_5k` run with the default config (or the overrides given):
the RBMs are pre-trained greedily, then the unrolled network and a randomly initialised copy of it are
fine-tuned on the same batches with the same optimizer for the same epochs (model.baseline=true). The
scores are gan-eval's on the run's last checkpoint: `accuracy` (pre-trained) and `random_init_accuracy`.

    OMP_NUM_THREADS=1 python benchmarks/dbn_pretraining.py [--seeds 0 1 2] [--set model.layers=[500,500,2000] ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (same folder)
from throughput_sides import compose_command  # noqa: E402


def run(seed: int, overrides: list[str], out: Path) -> tuple[dict[str, float], float]:
    """Train one seed and evaluate its last checkpoint as gan-eval does; returns (scores, training seconds)."""
    from gan_cli.commands.evaluate import evaluate
    from gan_cli.commands.train import train

    folder = out / f"seed{seed}"
    cfg = compose_train(["model=dbn", "data=mnist_5k", "trainer=cpu", "logger=none",
                         "callbacks=[checkpoints,rng_state]", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", f"seed={seed}", *overrides], folder)
    began = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - began
    record, _ = evaluate(compose_command("eval", [f"ckpt_path={folder / 'checkpoints' / 'last.ckpt'}",
                                       f"output={folder / 'eval.json'}"]))
    return {name: score["mean"] for name, score in record["scores"].items()}, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="gan-train overrides, e.g. model.layers=[256,256]")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-dbn"))
    args = parser.parse_args(argv)
    quiet_frameworks()
    cfg = compose_train(["model=dbn", "data=mnist_5k", *args.set], Path("unused")).model
    print(f"model=dbn on mnist_5k (4,500 training digits, 500 held out, 32x32): layers {list(cfg.layers)}, "
          f"{cfg.pretrain_epochs} CD-{cfg.k} epochs per RBM, {cfg.finetune_epochs} fine-tuning epochs "
          f"({cfg.optimizer._target_.rsplit('.', 1)[-1]} lr {cfg.finetune_lr}); overrides {args.set or 'none'}; "
          f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"  {'seed':>4}  {'pre-trained':>11}  {'random init':>11}  {'gain':>6}  {'train time':>10}")
    pretrained, random_init = [], []
    for seed in args.seeds:
        scores, seconds = run(seed, args.set, args.out)
        pretrained.append(100 * scores["accuracy"])
        random_init.append(100 * scores["random_init_accuracy"])
        gain = pretrained[-1] - random_init[-1]
        print(f"  {seed:>4}  {pretrained[-1]:10.1f}%  {random_init[-1]:10.1f}%  {gain:+5.1f}  {seconds:9.0f}s",
              flush=True)
    if len(args.seeds) > 1:
        gains = [p - r for p, r in zip(pretrained, random_init)]
        print(f"  mean  {statistics.mean(pretrained):10.1f}%  {statistics.mean(random_init):10.1f}%  "
              f"{statistics.mean(gains):+5.1f}  (std of the gain {statistics.stdev(gains):.1f})")
    print("Held-out accuracy: gan-eval's `accuracy` and `random_init_accuracy` (mean of the per-class accuracies on "
          "the 500 test digits, 50 per class).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
