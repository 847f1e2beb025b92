"""The non-adversarial image models next to what a user compares them with, on the embedded MNIST digits:

1. model=vae (its defaults: fully connected, 16-d code) and model=vae model/coder=conv (DCGAN-like encoder and
   decoder) against model=dcgan, each trained for the same wall-clock budget on the CPU: the Fréchet distance
   of their samples to held-out digits in the offline digit classifier's feature space (as bench-quality and
   the lapgan benchmark measure it), next to the real-vs-real floor;
2. model=autoencoder (undercomplete, sparse, denoising; default epochs): the test accuracy of a linear
   classifier on the codes of the digits (gan-eval's probe_accuracy), next to the same probe on raw pixels.

    OMP_NUM_THREADS=1 python benchmarks/vae_vs_dcgan.py [--budget 300] [--seeds 5] [--out DIR] [--quick] [--reuse]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import frechet, halves, held_out_digits, mean_std, samples  # noqa: E402  (same folder)
from throughput import quiet_frameworks  # noqa: E402
from zoo_quality import digit_classifier, reuse_or_train  # noqa: E402

#: the sample-drawing models, each trained for the budget
GENERATORS = {"vae": ["model=vae"], "vae_conv": ["model=vae", "model/coder=conv"], "dcgan": ["model=dcgan"]}
#: autoencoder variants, default epochs
AUTOENCODERS = {
    "undercomplete (32 linear units)": [],
    "sparse (128 logistic units, rho 0.05, beta 0.1)": ["model.code_activation=sigmoid", "model.code_dim=128",
                                                        "model.sparsity_weight=0.1"],
    "denoising (32 units, masking 0.3)": ["model.corruption=masking", "model.corruption_level=0.3"],
}


def batches_trained(ckpt: Path) -> int:
    """Training batches behind a checkpoint: DCGAN's D updates (one a batch), else Lightning's optimizer steps."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    return int(checkpoint["gan_cli"].get("d_updates", checkpoint["global_step"]))


def bench_generators(out: Path, quick: bool, budget: int, seeds: int, reuse: bool) -> None:
    from gan_cli.assembly import load_model

    _, features = digit_classifier(out, quick)
    datamodule, real, labels = held_out_digits()
    limit = f"trainer.max_time=00:00:{budget // 60:02d}:{budget % 60:02d}"
    rows = {}
    for name, overrides in GENERATORS.items():
        ckpt, seconds = reuse_or_train(f"{name}_{budget}s", [*overrides, "data=mnist_5k", "trainer.max_epochs=1000",
                                                             limit, "logger=none"], out, quick, reuse)
        model, _ = load_model(ckpt)
        rows[name] = (model, batches_trained(ckpt), seconds)
        print(f"{name} trained for {seconds:.0f} s", flush=True)
    splits = [halves(labels, seed) for seed in range(seeds)]
    floor = statistics.fmean(frechet(features, real[a], real[b]) for a, b in splits)
    print(f"\n1. VAE against DCGAN on mnist_5k, {budget} s of training each ({torch.get_num_threads()} threads); "
          f"Fréchet distance in the digit classifier's feature space to {len(splits[0][1])} held-out digits "
          f"(mean ± sd over {seeds} halvings/seeds):")
    print(f"   {'':<34}{'Fréchet distance':>20}{'x floor':>10}{'batches trained':>18}")
    print(f"   {'real vs real (floor)':<34}{floor:>20.3f}{1.0:>10.2f}")
    for name, (model, steps, _) in rows.items():
        values = [frechet(features, real[b], samples(model, datamodule, len(b), seed, False))
                  for seed, (_, b) in enumerate(splits)]
        label = {"vae": "model=vae (fc)", "vae_conv": "model=vae model/coder=conv", "dcgan": "model=dcgan"}[name]
        print(f"   {label:<34}{mean_std(values):>20}{statistics.fmean(values) / floor:>10.2f}{steps:>18}", flush=True)


def bench_autoencoders(out: Path, quick: bool, reuse: bool) -> None:
    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator

    datamodule, _, _ = held_out_digits()
    print("\n2. model=autoencoder on mnist_5k (15 epochs): test accuracy of a linear classifier (multinomial logistic "
          "regression) fitted on the codes of the 4,500 training digits, on the 500 held-out digits:")
    print(f"   {'':<50}{'on the codes':>14}{'on raw pixels':>15}{'time':>8}")
    for i, (name, overrides) in enumerate(AUTOENCODERS.items()):
        ckpt, seconds = reuse_or_train(f"autoencoder_{i}", ["model=autoencoder", "data=mnist_5k", *overrides,
                                                            "logger=none"], out, quick, reuse)
        scores = Evaluator(None).evaluate(load_model(ckpt)[0], datamodule)
        print(f"   {name:<50}{100 * scores['probe_accuracy']:>13.1f}%{100 * scores['probe_accuracy_pixels']:>14.1f}%"
              f"{seconds:>7.0f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=300, help="seconds of training for each sample-drawing model")
    parser.add_argument("--seeds", type=int, default=5,
                        help="halvings of the held-out digits for the Fréchet distance")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-quality"),
                        help="where the runs go (the digit classifier of bench-quality is reused from there)")
    parser.add_argument("--quick", action="store_true", help="10 batches per run: checks the script, not the models")
    parser.add_argument("--reuse", action="store_true", help="score existing runs in --out instead of training")
    parser.add_argument("--only", default="generators,autoencoders", help="comma-separated: generators, autoencoders")
    args = parser.parse_args()
    quiet_frameworks()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {args.out.resolve()}", flush=True)
    parts = args.only.split(",")
    if "generators" in parts:
        bench_generators(args.out, args.quick, args.budget, args.seeds, args.reuse)
    if "autoencoders" in parts:
        bench_autoencoders(args.out, args.quick, args.reuse)


if __name__ == "__main__":
    main()
