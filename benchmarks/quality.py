"""make bench-quality: do cgan and dcgan, trained with their default settings on the embedded MNIST digits,
draw digits that a classifier recognises and whose statistics match real held-out digits?

What it does, all offline on the CPU (minutes):
1. trains the project's digit classifier (`gan-train model=classifier data=mnist_5k`) and reports its
   accuracy on the 500 held-out digits;
2. trains `gan-train model=cgan data=mnist_5k` and `gan-train model=dcgan data=mnist_5k` (default settings);
3. in the classifier's feature space, the Fréchet distance of 250 samples to one half of the held-out digits
   (25 per class), next to the same distance between the two real halves (the floor: what a perfect model
   would score with this many images), over several random halvings and sample seeds;
4. the accuracy of the classifier on cgan samples of each requested label (100 per label).

Targets (issue 5): cgan label accuracy >= 95%; Fréchet distance within 3x of the real-vs-real floor. With --fast,
both are trained a second time with engine=fast (bf16 where the hardware has it, channels-last; compiled on a GPU),
which must learn as well: its rows are expected within the seeds' spread of the default ones.

    python benchmarks/quality.py [--seeds 5] [--out outputs/bench-quality] [--quick] [--fast]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (same folder)

HALF = 25  # held-out digits per class in each half


def train_run(name: str, overrides: list[str], out: Path, quick: bool) -> tuple[Path, float]:
    """Train `gan-train <overrides>` into out/name; returns its last checkpoint and the wall time."""
    from gan_cli.commands.train import train

    extra = ["trainer.max_epochs=1", "trainer.limit_train_batches=10"] if quick else []
    cfg = compose_train([*overrides, "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                         *extra], out / name)
    start = time.perf_counter()
    train(cfg)
    return out / name / "checkpoints" / "last.ckpt", time.perf_counter() - start


def held_out_digits(data_overrides: list[str] = ()):
    """mnist_5k's 500 test digits: (datamodule, images in [0, 1], labels); `data_overrides` (data.image_size=28)
    set the datamodule as the model under test was trained."""
    from hydra.utils import instantiate

    datamodule = instantiate(compose_train(["data=mnist_5k", *data_overrides], Path("unused")).data)
    test = datamodule.build("test")
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    labels = torch.tensor([int(test[i]["label"]) for i in range(len(test))])
    return datamodule, datamodule.denormalize(images), labels


def halves(labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint halves of the held-out digits, HALF per class in each."""
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for digit in labels.unique():
        rows = torch.nonzero(labels == digit).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        first.append(rows[:HALF])
        second.append(rows[HALF:2 * HALF])
    return torch.cat(first), torch.cat(second)


def frechet(features, a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between two image sets (in [0, 1]) in the classifier's feature space."""
    from gan_cli.metrics.scores import DistributionScores

    scores = DistributionScores(["fid"])
    with torch.no_grad():
        scores.update(features(a)[0], None, real=True)
        scores.update(features(b)[0], None, real=False)
    return scores.compute(kid_subset_size=2)["fid"]


def samples(model, datamodule, n: int, seed: int, conditional: bool) -> torch.Tensor:
    torch.manual_seed(seed)
    labels = torch.arange(n) % model.num_classes if conditional else None
    return datamodule.denormalize(model.sample(n, labels))


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):8.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="random halvings of the held-out digits and sample seeds")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-quality"), help="where the three runs go")
    parser.add_argument("--quick", action="store_true", help="10 batches per model: checks the script, not the models")
    parser.add_argument("--fast", action="store_true", help="also train both with engine=fast and compare")
    args = parser.parse_args()
    quiet_frameworks()
    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator
    from gan_cli.metrics.features import ClassifierFeatures

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {args.out.resolve()}\n", flush=True)
    classifier_ckpt, seconds = train_run("classifier", ["model=classifier", "data=mnist_5k"], args.out, args.quick)
    print(f"classifier trained in {seconds:.0f} s", flush=True)
    datamodule, real, labels = held_out_digits()
    classifier, _ = load_model(classifier_ckpt)
    accuracy = Evaluator(None).evaluate(classifier, datamodule)["accuracy"]
    features = ClassifierFeatures(str(classifier_ckpt))

    models = {}
    for name in ("dcgan", "cgan"):
        for engine in ("eager", "fast") if args.fast else ("eager",):
            shown = name if engine == "eager" else f"{name} engine=fast"
            overrides = [f"model={name}", "data=mnist_5k", f"engine={engine}"]
            ckpt, seconds = train_run(shown.replace(" ", "_"), overrides, args.out, args.quick)
            models[shown], _ = load_model(ckpt)
            print(f"{shown} trained in {seconds:.0f} s", flush=True)

    splits = [halves(labels, seed) for seed in range(args.seeds)]
    floor = [frechet(features, real[a], real[b]) for a, b in splits]
    distances = {name: [frechet(features, real[b], samples(model, datamodule, len(b), seed, name.startswith("cgan")))
                        for seed, (_, b) in enumerate(splits)] for name, model in models.items()}
    judged = Evaluator(features, classifier=features, scores=["fid"], num_samples=2, samples_per_label=100)
    label_scores = judged.evaluate(models["cgan"], datamodule)
    per_label = {int(k.rsplit("_", 1)[1]): v for k, v in label_scores.items() if k.startswith("label_accuracy_")}
    fast_labels = judged.evaluate(models["cgan engine=fast"], datamodule) if args.fast else None

    floor_mean = statistics.fmean(floor)
    print(f"\nDigit classifier: {100 * accuracy:.1f}% accuracy on the {len(labels)} held-out digits "
          f"(its features: {features.feature_dim}-d penultimate layer).")
    print(f"Fréchet distance in its feature space to {len(splits[0][1])} held-out digits, "
          f"{len(splits[0][1])} images each, mean ± sd over {args.seeds} halvings/seeds:\n")
    print(f"  {'':<22}{'Fréchet distance':>20}{'x floor':>10}{'target':>12}")
    print(f"  {'real vs real (floor)':<22}{mean_std(floor):>20}{1.0:>10.2f}")
    for name, values in distances.items():
        ratio = statistics.fmean(values) / floor_mean
        print(f"  {name:<22}{mean_std(values):>20}{ratio:>10.2f}{'<= 3x: ' + ('met' if ratio <= 3 else 'NOT met'):>12}")
    worst = min(per_label, key=per_label.get)
    print(f"\ncgan label accuracy (100 samples per label): {100 * label_scores['label_accuracy']:.1f}% "
          f"(target >= 95%: {'met' if label_scores['label_accuracy'] >= 0.95 else 'NOT met'}); "
          f"lowest: label {worst} at {100 * per_label[worst]:.0f}%")
    print("  per label: " + "  ".join(f"{k}:{100 * v:.0f}%" for k, v in sorted(per_label.items())))
    if fast_labels is not None:
        print(f"cgan engine=fast label accuracy: {100 * fast_labels['label_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
