"""make bench-quality, part 3: the modern GANs against DCGAN under equal training time (issue 24).

Each recipe trains for the same wall time (`--minutes`, trainer.max_time) on mnist_5k, then on data=flags (32 px),
and is scored as part 1 scores cgan and dcgan:

- mnist_5k: the Fréchet distance, in the project's digit classifier's features, of 250 samples to one half of the
  500 held-out digits, next to the distance between the two real halves (the floor), over `--seeds` halvings and
  sample seeds (a conditional model draws 25 of each label, as the halves hold);
- flags: the Fréchet distance in 8x8 RGB averages (benchmarks/flags.py's features) of 128 samples to one half of
  the 256 flags, next to the real-vs-real floor of the two halves, and the recall and distinct flags of 256 samples.

StudioGAN's CIFAR-10 table orders them SNGAN and StyleGAN2 well ahead of DCGAN; on 2 CPU cores and minutes of
training the order can differ, which the printed table shows as it is. Run it alone on the machine: the budget is
wall time.

    python benchmarks/modern_quality.py [--minutes 4] [--seeds 3] [--only dcgan sngan ...] [--quick] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flags import collapse_scores, features  # noqa: E402  (same folder)
from quality import frechet, halves, held_out_digits, mean_std, train_run  # noqa: E402
from throughput import compose_train, quiet_frameworks  # noqa: E402

#: name -> gan-train overrides (each trains for the same time)
RECIPES = {
    "dcgan": ["model=dcgan"],
    "dcgan+ema": ["model=dcgan", "tricks=[ema]"],
    "cgan": ["model=cgan"],
    "cgan+ema": ["model=cgan", "tricks=[ema]"],
    "sngan": ["model=sngan"],
    "stylegan2": ["model=stylegan2"],
    "stylegan2+ada": ["model=stylegan2", "tricks=[ada]"],
    # the paper sizes take a CPU seconds per step; the same recipes at DCGAN-like widths
    "sngan-small": ["model=sngan", "model.generator.ngf=128"],
    "stylegan2-small": ["model=stylegan2", "model.channel_base=4096", "model.channel_max=128"],
    "stylegan2-small+ada": ["model=stylegan2", "model.channel_base=4096", "model.channel_max=128", "tricks=[ada]",
                            "tricks.ada.ada_kimg=100"],
}


def draw(model, datamodule, n: int, seed: int) -> torch.Tensor:
    """`n` samples in [0, 1]; a conditional model draws the labels in turn (n / classes of each)."""
    torch.manual_seed(seed)
    labels = torch.arange(n) % model.num_classes if model.num_classes else None
    return datamodule.denormalize(model.sample(n, labels)).clamp(0, 1)


def timed_run(name: str, overrides: list[str], minutes: float, out: Path, quick: bool):
    from gan_cli.assembly import load_model

    budget = [f"trainer.max_time=00:00:{int(minutes):02d}:{round(60 * (minutes % 1)):02d}", "trainer.max_epochs=-1"]
    ckpt, seconds = train_run(name, [*overrides, *budget, "logger=none"], out, quick)
    model, _ = load_model(ckpt)
    steps = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
    return model, seconds, steps


def digits_rows(args, digit_features) -> list[tuple[str, list[float], int, float]]:
    datamodule, real, labels = held_out_digits()
    splits = [halves(labels, seed) for seed in range(args.seeds)]
    rows = [("real vs real (floor)", [frechet(digit_features, real[a], real[b]) for a, b in splits], 0, 0.0)]
    for name in args.only:
        model, seconds, steps = timed_run(f"mnist_{name}", [*RECIPES[name], "data=mnist_5k", *args.overrides],
                                          args.minutes, args.out, args.quick)
        rows.append((name, [frechet(digit_features, real[b], draw(model, datamodule, len(b), seed))
                            for seed, (_, b) in enumerate(splits)], steps, seconds))
        print(f"mnist_5k {name}: {steps} optimizer steps in {seconds:.0f} s", flush=True)
    return rows


def flags_rows(args) -> list[tuple[str, list[float], int, float, dict]]:
    from hydra.utils import instantiate

    datamodule = instantiate(compose_train(["data=flags", "data.image_size=32"], args.out / "data").data)
    flags = datamodule.build("train")
    real = datamodule.denormalize(torch.stack([flags[i]["image"] for i in range(len(flags))])).clamp(0, 1)
    as_features = lambda images: (features(images),)  # noqa: E731  (frechet's feature-network shape)
    splits = [torch.randperm(len(real), generator=torch.Generator().manual_seed(s)).chunk(2) for s in range(args.seeds)]
    rows = [("real vs real (floor)", [frechet(as_features, real[a], real[b]) for a, b in splits], 0, 0.0, {})]
    for name in args.only:
        model, seconds, steps = timed_run(f"flags_{name}", [*RECIPES[name], "data=flags", "data.image_size=32",
                                                            *args.overrides], args.minutes, args.out, args.quick)
        distances = [frechet(as_features, real[b], draw(model, datamodule, len(b), seed))
                     for seed, (_, b) in enumerate(splits)]
        coverage = collapse_scores(features(real), features(draw(model, datamodule, 256, 0)))
        rows.append((name, distances, steps, seconds, coverage))
        print(f"flags {name}: {steps} optimizer steps in {seconds:.0f} s", flush=True)
    return rows


def print_table(title: str, rows, extra=None) -> None:
    floor = statistics.fmean(rows[0][1])
    print(f"\n{title}\n  {'':<22}{'Fréchet distance':>20}{'x floor':>10}{'steps':>9}{'seconds':>9}"
          + ("" if extra is None else f"{'recall':>9}{'distinct':>10}"))
    for row in rows:
        name, values, steps, seconds = row[:4]
        line = f"  {name:<22}{mean_std(values):>20}{statistics.fmean(values) / floor:>10.2f}{steps:>9}{seconds:>9.0f}"
        if extra is not None and len(row) > 4 and row[4]:
            line += f"{row[4]['recall']:>9.3f}{row[4]['distinct_flags']:>10}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training time of every run")
    parser.add_argument("--seeds", type=int, default=3, help="real halvings and sample seeds per score")
    parser.add_argument("--only", nargs="+", default=list(RECIPES), choices=list(RECIPES), help="recipes to run")
    parser.add_argument("--no-flags", action="store_true", help="mnist_5k only")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-modern"))
    parser.add_argument("--quick", action="store_true", help="10 batches a run: checks the script, not the models")
    parser.add_argument("overrides", nargs="*", help="gan-train overrides for every run, e.g. engine=fast")
    args = parser.parse_args()
    quiet_frameworks()
    from gan_cli.assembly import load_model
    from gan_cli.metrics.features import ClassifierFeatures

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.minutes} min of training a run; "
          f"runs in {args.out.resolve()}\n", flush=True)
    classifier_ckpt, seconds = train_run("classifier", ["model=classifier", "data=mnist_5k", "logger=none"], args.out,
                                         args.quick)
    load_model(classifier_ckpt)  # fails early on a broken classifier run
    digits = digits_rows(args, ClassifierFeatures(str(classifier_ckpt)))
    print_table(f"mnist_5k: Fréchet distance in the digit classifier's features, 250 samples against 250 held-out "
                f"digits, mean ± sd over {args.seeds} halvings/seeds (target of the default job: <= 3x)", digits)
    if not args.no_flags:
        print_table(f"flags (32 px): Fréchet distance in 8x8 RGB averages, 128 samples against 128 flags, mean ± sd "
                    f"over {args.seeds} halvings/seeds; recall and distinct nearest flags of 256 samples",
                    flags_rows(args), extra=True)


if __name__ == "__main__":
    main()
