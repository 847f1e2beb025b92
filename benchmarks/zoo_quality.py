"""make bench-quality, part 2 (issue 6): the rest of the adversarial zoo, each next to what a user would compare
it with, all on data that ships with the tool (the embedded MNIST digits, the 2-D ring):

1. infogan on mnist_5k: how well the categorical code c1 maps to the digit classes (best one-to-one matching of
   c1 values to the offline digit classifier's labels). Target >= 90%; the paper reports about 95%.
2. ssgan with 10 labels per class on mnist_5k: test accuracy of its discriminator, next to the same network
   trained as a plain classifier on those 100 labels alone (and to model=classifier, a CNN, on them).
   Target: >= 90% and >= 10 points better than the same network alone.
3. ring8 (experiment=ring8_mlp): modes covered and share of high-quality samples for the plain GAN, with
   tricks=[unrolled] and with tricks=[minibatch_discrimination]. Target: all 8 modes with unrolled.
4. lapgan against dcgan on mnist_5k with the same wall-clock budget: Fréchet distance in the digit classifier's
   feature space to held-out digits, next to the real-vs-real floor.

    python benchmarks/zoo_quality.py [--only infogan,ssgan,ring8,lapgan] [--out DIR] [--quick] [--budget 300]
    python benchmarks/zoo_quality.py --only infogan --infogan-set model.continuous_weight=0.1   # a variant
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import frechet, halves, held_out_digits, mean_std, samples, train_run  # noqa: E402  (same folder)
from throughput import quiet_frameworks  # noqa: E402

PARTS = ("infogan", "ssgan", "ring8", "lapgan")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def digit_classifier(out: Path, quick: bool):
    from gan_cli.metrics.features import ClassifierFeatures

    ckpt = out / "classifier" / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        ckpt, seconds = train_run("classifier", ["model=classifier", "data=mnist_5k"], out, quick)
        print(f"digit classifier trained in {seconds:.0f} s", flush=True)
    return ckpt, ClassifierFeatures(str(ckpt))


def bench_infogan(out: Path, quick: bool, epochs: int, train_seeds: list[int], overrides: list[str]) -> None:
    """One run per training seed: InfoGAN's code either separates all ten digits or merges two of them,
    depending on the run, so a single run says little. `overrides` (e.g. model.continuous_weight=0.1) go to
    every run, and into the run folders' names."""
    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator

    _, features = digit_classifier(out, quick)
    datamodule, _, _ = held_out_digits([o for o in overrides if o.startswith("data.")])  # Q reads these images
    evaluator = Evaluator(features, classifier=features, scores=["fid"], num_samples=2, samples_per_label=200)
    variant = "".join("_" + re.sub(r"[^\w.]+", "_", o.removeprefix("model.")) for o in overrides)
    print(f"\n1. infogan{''.join(' ' + o for o in overrides)}, {epochs} epochs on mnist_5k: c1-to-class accuracy "
          "(200 samples per c1 value, mean over 3 sampling seeds); target >= 90%, the paper: about 95%")
    means = []
    for train_seed in train_seeds:
        name = ("infogan" if train_seed == 42 else f"infogan_seed{train_seed}") + variant  # 42: the default seed
        ckpt = out / name / "checkpoints" / "last.ckpt"
        seconds = None
        if not ckpt.exists():
            ckpt, seconds = train_run(name, ["model=infogan", "data=mnist_5k", f"trainer.max_epochs={epochs}",
                                             f"seed={train_seed}", *overrides], out, quick)
        model, _ = load_model(ckpt)
        results = [evaluator.evaluate(model, datamodule, seed=seed) for seed in range(3)]
        accuracy = statistics.fmean(r["c1_accuracy"] for r in results)
        means.append(accuracy)
        mapping = {k.removeprefix("c1_to_class_"): int(v) for k, v in results[0].items() if k.startswith("c1_to_class")}
        took = f"{seconds:.0f} s" if seconds is not None else "reused"
        print(f"   training seed {train_seed:>3} ({took}): {100 * accuracy:.1f}% (Q on the real test digits "
              f"{100 * results[0]['q_c1_accuracy']:.1f}%)   c1 -> class {mapping}", flush=True)
    reaching = sum(m >= 0.9 for m in means)
    print(f"   median over {len(means)} runs {100 * statistics.median(means):.1f}% ({reaching} of {len(means)} runs "
          f"reach 90%): target {verdict(statistics.median(means) >= 0.9)}", flush=True)


def bench_ssgan(out: Path, quick: bool, epochs: int) -> None:
    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator

    labels = ["data=mnist_5k", "data.labels_per_class=10"]
    schedule = [f"model.lr_constant_epochs={epochs // 2}", f"model.lr_decay_epochs={epochs - epochs // 2}"]
    datamodule, _, _ = held_out_digits()
    rows = {}
    for name, overrides in {
        "ssgan (its discriminator)": ["model=ssgan", *labels, *schedule],
        "the same network on the 100 labels alone": ["model=ssgan", *labels, *schedule, "model.unsupervised_weight=0"],
    }.items():
        ckpt, seconds = train_run("ssgan" if "its" in name else "ssgan_labels_only", overrides, out, quick)
        rows[name] = (load_model(ckpt)[0].evaluation_scores(Evaluator(None), datamodule)["accuracy"], seconds)
    ckpt, seconds = train_run("classifier_10_labels", ["model=classifier", *labels], out, quick)
    rows["model=classifier (a CNN) on the 100 labels"] = (Evaluator(None).evaluate(load_model(ckpt)[0], datamodule)
                                                          ["accuracy"], seconds)
    print(f"\n2. ssgan, 10 labels per class (100 labelled, 4,400 unlabelled digits), {epochs} epochs; accuracy on the "
          "500 test digits:")
    print(f"   {'':<46}{'test accuracy':>14}{'time':>8}")
    for name, (accuracy, seconds) in rows.items():
        print(f"   {name:<46}{100 * accuracy:>13.1f}%{seconds:>7.0f}s")
    ssgan, alone = rows["ssgan (its discriminator)"][0], rows["the same network on the 100 labels alone"][0]
    print(f"   target >= 90%: {verdict(ssgan >= 0.9)}; >= 10 points over the same classifier on the labels alone: "
          f"{verdict(ssgan - alone >= 0.10)} ({100 * (ssgan - alone):+.1f} points)", flush=True)


def reuse_or_train(name: str, overrides: list[str], out: Path, quick: bool, reuse: bool) -> tuple[Path, float]:
    """--reuse: take out/name's checkpoint if it exists (its training time is then unknown: nan)."""
    ckpt = out / name / "checkpoints" / "last.ckpt"
    if reuse and ckpt.exists():
        return ckpt, float("nan")
    return train_run(name, overrides, out, quick)


def bench_ring8(out: Path, quick: bool, epochs: int, seeds: int, reuse: bool) -> None:
    from hydra.utils import instantiate
    from throughput import compose_train

    from gan_cli.assembly import load_model

    # minibatch discrimination at 10 kernels of 3: the default 100 x 5 costs far more at 512 points a batch
    # (measured figures: benchmarks/RESULTS.md#ring8)
    variants = {"plain GAN": [], "tricks=[unrolled] (5 steps)": ["tricks=[unrolled]"],
                "tricks=[minibatch_discrimination] (10x3)": ["tricks=[minibatch_discrimination]",
                                                             "tricks.minibatch_discrimination.num_kernels=10",
                                                             "tricks.minibatch_discrimination.kernel_dim=3"]}
    print(f"\n3. ring8 (8 Gaussians, radius 2, std 0.02), experiment=ring8_mlp, {epochs} epochs of 19 batches of 512 "
          f"points; 2,500 samples; mean over seeds {list(range(42, 42 + seeds))}:")
    print(f"   {'':<36}{'modes covered (of 8)':>22}{'high quality':>16}{'time':>8}")
    datamodule = instantiate(compose_train(["experiment=ring8_mlp"], Path("unused")).data)
    results = {}
    for name, extra in variants.items():
        modes, quality, seconds = [], [], 0.0
        for seed in range(42, 42 + seeds):  # 42: gan-train's default seed
            run = f"ring8_{extra[0].removeprefix('tricks=[').strip(']') if extra else 'plain'}_{seed}"
            ckpt, took = reuse_or_train(run, ["experiment=ring8_mlp", *extra, f"trainer.max_epochs={epochs}",
                                              f"seed={seed}", "logger=none"], out, quick, reuse)
            model, _ = load_model(ckpt)
            torch.manual_seed(seed)
            stats = datamodule.mode_stats(model.sample(2500))
            modes.append(stats["modes_covered"])
            quality.append(stats["high_quality"])
            seconds += took
        results[name] = modes
        print(f"   {name:<36}{mean_std(modes) + ' ' + str(modes):>22}{100 * statistics.fmean(quality):>15.1f}%"
              f"{seconds / seeds:>7.0f}s", flush=True)
    unrolled = results["tricks=[unrolled] (5 steps)"]
    print(f"   target: all 8 modes with unrolled: {verdict(min(unrolled) == 8)}", flush=True)


def bench_lapgan(out: Path, quick: bool, budget: int, seeds: int) -> None:
    from gan_cli.assembly import load_model

    _, features = digit_classifier(out, quick)
    datamodule, real, labels = held_out_digits()
    limit = f"trainer.max_time=00:00:{budget // 60:02d}:{budget % 60:02d}"
    models, steps = {}, {}
    for name in ("dcgan", "lapgan"):
        ckpt, seconds = train_run(f"{name}_{budget}s", [f"model={name}", "data=mnist_5k", "trainer.max_epochs=1000",
                                                        limit], out, quick)
        models[name], _ = load_model(ckpt)
        steps[name] = torch.load(ckpt, map_location="cpu", weights_only=True)["gan_cli"]["d_updates"]
    splits = [halves(labels, seed) for seed in range(seeds)]
    floor = statistics.fmean(frechet(features, real[a], real[b]) for a, b in splits)
    print(f"\n4. lapgan against dcgan on mnist_5k, {budget} s of training each; Fréchet distance in the digit "
          f"classifier's feature space to {len(splits[0][1])} held-out digits (mean ± sd over {seeds} halvings/seeds):")
    print(f"   {'':<22}{'Fréchet distance':>20}{'x floor':>10}{'batches trained':>18}")
    print(f"   {'real vs real (floor)':<22}{floor:>20.3f}{1.0:>10.2f}")
    for name, model in models.items():
        values = [frechet(features, real[b], samples(model, datamodule, len(b), seed, bool(model.num_classes)))
                  for seed, (_, b) in enumerate(splits)]
        print(f"   {name:<22}{mean_std(values):>20}{statistics.fmean(values) / floor:>10.2f}{steps[name]:>18}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-quality"))
    parser.add_argument("--quick", action="store_true", help="10 batches per run: checks the script, not the models")
    parser.add_argument("--infogan-epochs", type=int, default=30)
    parser.add_argument("--infogan-seeds", default="42,1,2,3,4", help="training seeds, one run each")
    parser.add_argument("--infogan-set", nargs="*", default=[], metavar="OVERRIDE",
                        help="gan-train overrides for every infogan run, e.g. model.continuous_weight=0.1")
    parser.add_argument("--ssgan-epochs", type=int, default=100, help="50 at the full rate, 50 decaying (the default)")
    parser.add_argument("--ring-epochs", type=int, default=500, help="500 epochs = about 9,500 steps")
    parser.add_argument("--ring-seeds", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="ring8: score existing runs in --out instead of training")
    parser.add_argument("--budget", type=int, default=300, help="seconds of training for lapgan and for dcgan")
    parser.add_argument("--seeds", type=int, default=5, help="halvings of the held-out digits for the Fréchet distance")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]}; choose from {', '.join(PARTS)}")
    quiet_frameworks()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device}; runs in {args.out.resolve()}", flush=True)
    if "infogan" in parts:
        bench_infogan(args.out, args.quick, args.infogan_epochs, [int(s) for s in args.infogan_seeds.split(',')],
                      args.infogan_set)
    if "ssgan" in parts:
        bench_ssgan(args.out, args.quick, args.ssgan_epochs)
    if "ring8" in parts:
        bench_ring8(args.out, args.quick, args.ring_epochs, args.ring_seeds, args.reuse)
    if "lapgan" in parts:
        bench_lapgan(args.out, args.quick, args.budget, args.seeds)


if __name__ == "__main__":
    main()
