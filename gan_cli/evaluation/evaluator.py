"""Evaluates a model with the scores that fit it; the training callback and gan-eval both use this.

- a generator (`model.sample`): FID/KID/IS of `num_samples` samples against the reference split, and, for
  a conditional model with a `classifier`, the accuracy on `samples_per_label` samples of each label;
- a translation model (pix2pix, CycleGAN): on the test split, for each direction it translates, FID/KID
  of translated against real target images, and mean L1, PSNR and SSIM against the paired truth
  where the data is paired;
- a classifier: its accuracy on the reference split;
- a model measured only by its own scores (`evaluation_scores`, e.g. an autoencoder's linear probe): those.

Sampling follows `seed` in a forked random state, so an evaluation never shifts the training run's
random numbers. Under DDP each rank evaluates its share and the torchmetrics states are combined.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from gan_cli.errors import UserError
from gan_cli.metrics.features import as_feature_network
from gan_cli.metrics.ranks import rank_and_world, rank_seed, rank_share, share
from gan_cli.metrics.reference_cache import ReferenceCache
from gan_cli.metrics.scores import KID_SUBSETS, PRDC_K, DistributionScores, LabelAccuracy, PairedScores, check_scores
from gan_cli.models.contract import LabelClassifier, Sampler, SelfEvaluating, Translator


def model_kind(model: nn.Module) -> str:
    """Which scores apply to `model`, from what it declares it can do (gan_cli.models.contract)."""
    if isinstance(model, Translator):
        return "translation"
    if isinstance(model, Sampler):
        return "generator"
    if isinstance(model, LabelClassifier):
        return "classifier"
    if isinstance(model, SelfEvaluating):
        return "own"
    raise UserError(f"gan-eval does not know how to evaluate a {type(model).__name__}.")


def dataset_name(datamodule) -> str:
    source = getattr(datamodule.dataset, "func", datamodule.dataset)
    return f"{source.__module__}.{source.__qualname__}" if hasattr(source, "__qualname__") else repr(source)


class Evaluator:
    """Scores for a model, with the settings of the `metrics` config (see conf/metrics/)."""

    def __init__(self, feature_net: nn.Module | None, classifier: nn.Module | None = None,
                 scores: Sequence[str] = ("fid", "kid", "is"), num_samples: int = 10000,
                 samples_per_label: int = 100, batch_size: int = 100, reference_split: str = "test",
                 reference_size: int | None = None, kid_subset_size: int = 1000, seed: int = 0) -> None:
        if num_samples < 2 or batch_size < 1 or samples_per_label < 1 or kid_subset_size < 2:
            raise UserError("metrics.num_samples and metrics.kid_subset_size must be at least 2, metrics.batch_size "
                            "and metrics.samples_per_label at least 1.")
        self.feature_net = as_feature_network(feature_net) if feature_net is not None else None
        self.classifier = as_feature_network(classifier) if classifier is not None else None
        self.scores = check_scores(scores)
        self.num_samples, self.samples_per_label, self.batch_size = num_samples, samples_per_label, batch_size
        self.reference_split, self.reference_size = reference_split, reference_size
        self.kid_subset_size, self.seed = kid_subset_size, seed
        self.distributions: dict[str, DistributionScores] = {}  # keeps the real images' statistics
        self.real_loaded: set[str] = set()  # whose real images' features are in self.distributions
        self.compared: dict[str, tuple[int, int]] = {}  # (real, generated) images compared, over all ranks
        self.paired_truth = False
        self.effective_kid_subset: int | None = None  # kid_subset_size capped at the images compared
        self.last_protocol: dict = {}
        self.reference_cache: ReferenceCache | None = None  # set by gan-eval: real features kept between runs
        self.reference_cached = False

    # --- entry point ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule, seed: int | None = None) -> dict[str, float]:
        """All scores that apply to `model`, as {name: value}."""
        seed = self.seed if seed is None else seed
        kind = model_kind(model)
        if kind == "generator" and hasattr(datamodule, "mode_stats"):  # 2-D points: no image features apply
            kind = "points"
        if kind in ("generator", "translation") and self.feature_net is None:
            raise UserError("metrics.feature_net is not set: name the network whose features FID and KID use "
                            "(metrics=inception, metrics=digits, or a _target_).")
        device = model.device
        for net in (self.feature_net, self.classifier):
            if net is not None:
                net.to(device)
        rank, world = rank_and_world()
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(rank_seed(seed, rank))
            if kind == "points":
                results = datamodule.mode_stats(model.sample(self.num_samples))
            elif kind == "generator":
                results = self._generator(model, datamodule, rank, world, seed)
            elif kind == "translation":
                results = self._translation(model, datamodule, rank, world, seed)
            elif kind == "classifier":
                results = self._classifier(model, datamodule, rank, world)
            else:
                results = {}
            if isinstance(model, SelfEvaluating):  # what it is measured by besides the above (e.g. InfoGAN's codes)
                results |= model.evaluation_scores(self, datamodule)
        self.last_protocol = self.protocol(model, datamodule, kind, world)
        return results

    # --- generators ------------------------------------------------------------------------------
    def _generator(self, model, datamodule, rank: int, world: int, seed: int) -> dict[str, float]:
        scores = self._distribution("samples", device=model.device)
        if "samples" not in self.real_loaded:
            scores.update(self._reference_features(datamodule, rank, world, model.device), None, real=True)
            self.real_loaded.add("samples")
        torch.manual_seed(rank_seed(seed, rank))  # the samples do not depend on whether the reference was loaded now
        num_classes = model.num_classes
        for n in self._batches(share(self.num_samples, rank, world)):
            labels = torch.randint(0, num_classes, (n,), device=model.device) if num_classes else None
            self._update(scores, datamodule.denormalize(model.sample(n, labels)), real=False)
        results = self._compute("samples", scores, seed)
        if num_classes and self.classifier is not None:
            results |= self._label_accuracy(model, datamodule, rank, world, num_classes)
        return results

    def _label_accuracy(self, model, datamodule, rank: int, world: int, num_classes: int) -> dict[str, float]:
        if self.classifier.num_classes not in (num_classes, -1):
            raise UserError(f"metrics.classifier tells {self.classifier.num_classes} classes apart but the model "
                            f"draws {num_classes} labels; use a classifier trained on the same data.")
        accuracy = LabelAccuracy(num_classes).to(model.device)
        for label in range(num_classes):
            for n in self._batches(share(self.samples_per_label, rank, world)):
                labels = torch.full((n,), label, device=model.device)
                _, logits = self.classifier(datamodule.denormalize(model.sample(n, labels)))
                accuracy.update(logits, labels)
        return accuracy.compute()

    def _reference_features(self, datamodule, rank: int, world: int, device) -> Tensor:
        """This rank's share of the reference images' features; from `reference_cache` when it holds them (a
        single process), else computed (and kept there)."""
        reference = self._reference(datamodule)
        spec = datamodule.spec
        key = {"feature_network": self.feature_net.describe(), "dataset": dataset_name(datamodule),
               "split": self.reference_split, "count": len(reference), "image_size": spec.image_size,
               "channels": spec.channels, "subset_seed": self.seed if self.reference_size else None}
        cache = self.reference_cache if world == 1 else None
        features = cache.load(key) if cache else None
        self.reference_cached = features is not None
        if features is None:
            features = torch.cat([self.feature_net(datamodule.denormalize(batch["image"].to(device)))[0]
                                  for batch in self._loader(reference, rank, world, datamodule)])
            if cache:
                cache.save(key, features)
        return features.to(device)

    def _reference(self, datamodule) -> Dataset:
        """The real images the samples are compared with: the reference split, or a fixed random subset."""
        reference = datamodule.build(self.reference_split)
        if self.reference_size and self.reference_size < len(reference):
            generator = torch.Generator().manual_seed(self.seed)
            reference = Subset(reference, torch.randperm(len(reference), generator=generator)[:self.reference_size].tolist())
        if len(reference) < 2:
            raise UserError(f"The reference split {self.reference_split!r} has {len(reference)} images; FID needs at "
                            "least 2. Choose another one with metrics.reference_split=train.")
        return reference

    # --- translation -----------------------------------------------------------------------------
    def _translation(self, model, datamodule, rank: int, world: int, seed: int) -> dict[str, float]:
        test = datamodule.build("test", train=False)
        directions = {d: ("A", "B") if d == "AtoB" else ("B", "A") for d in model.GENERATORS}
        distributions = {d: self._distribution(d, device=model.device) for d in directions}
        self.paired_truth = bool(getattr(test, "paired", False))
        paired = {d: PairedScores().to(model.device) for d in directions} if self.paired_truth else {}
        need_real = {d: d not in self.real_loaded for d in directions}
        for indices, batch in self._indexed_batches(test, rank, world, datamodule):
            for direction, (source, target) in directions.items():
                keep_source = indices < test.counts[source]  # unpaired test sets repeat the smaller domain
                fake = self._translate(model, batch[source][keep_source].to(model.device), direction)
                fake = datamodule.denormalize(fake)
                real = datamodule.denormalize(batch[target].to(model.device))
                if len(fake):
                    self._update(distributions[direction], fake, real=False)
                if need_real[direction] and bool((indices < test.counts[target]).any()):
                    self._update(distributions[direction], real[indices < test.counts[target]], real=True)
                if paired:
                    paired[direction].update(fake, real)
        results: dict[str, float] = {}
        for direction, (source, target) in directions.items():
            self.real_loaded.add(direction)
            scores = self._compute(direction, distributions[direction], seed)
            if paired:
                scores |= paired[direction].compute()
            results |= {f"{direction}/{name}": value for name, value in scores.items()}
        return results

    @staticmethod
    def _translate(model, images: Tensor, direction: str) -> Tensor:
        if model.inference == "paper":  # batch statistics of one test image, as at the reference's batch size 1
            return torch.cat([model.translate(image[None], direction) for image in images]) if len(images) else images
        return model.translate(images, direction)

    # --- classifiers -----------------------------------------------------------------------------
    def _classifier(self, model, datamodule, rank: int, world: int) -> dict[str, float]:
        accuracy = LabelAccuracy(model.num_classes).to(model.device)
        for batch in self._loader(datamodule.build(self.reference_split), rank, world, datamodule):
            accuracy.update(model(batch["image"].to(model.device)), batch["label"].to(model.device))
        return accuracy.compute("accuracy")

    # --- shared pieces ---------------------------------------------------------------------------
    def _distribution(self, key: str, device) -> DistributionScores:
        if key not in self.distributions:
            self.distributions[key] = DistributionScores(self.scores)
        scores = self.distributions[key].to(device)
        scores.reset()
        return scores

    def _update(self, scores: DistributionScores, images: Tensor, real: bool) -> None:
        features, logits = self.feature_net(images)
        scores.update(features, logits, real=real)

    def _compute(self, key: str, scores: DistributionScores, seed: int) -> dict[str, float]:
        self.compared[key] = scores.counts()
        self.effective_kid_subset = min(self.kid_subset_size, *self.compared[key])
        torch.manual_seed(seed)  # KID's subsets and IS's splits: the same on every rank
        return scores.compute(self.effective_kid_subset)

    def _batches(self, total: int) -> Iterator[int]:
        for start in range(0, total, self.batch_size):
            yield min(self.batch_size, total - start)

    def _loader(self, dataset: Dataset, rank: int, world: int, datamodule) -> DataLoader:
        return DataLoader(rank_share(dataset, rank, world), batch_size=self.batch_size,
                          num_workers=getattr(datamodule, "num_workers", 0))

    def _indexed_batches(self, dataset: Dataset, rank: int, world: int, datamodule) -> Iterator[tuple[Tensor, dict]]:
        indices = torch.arange(rank, len(dataset), world)
        for start, batch in zip(range(0, len(indices), self.batch_size), self._loader(dataset, rank, world, datamodule)):
            yield indices[start:start + self.batch_size], batch

    # --- the record ------------------------------------------------------------------------------
    def protocol(self, model, datamodule, kind: str, world: int) -> dict:
        """How the scores were computed (see gan_cli.metrics.record for what is added to it)."""
        spec = datamodule.spec
        protocol: dict = {"model_kind": kind, "image_size": spec.image_size, "channels": spec.channels,
                          "dataset": dataset_name(datamodule), "ranks": world}
        if self.feature_net is not None and kind in ("generator", "translation"):
            protocol["feature_network"] = self.feature_net.describe()
        if kind == "generator":
            real, generated = self.compared["samples"]
            protocol |= {"reference": {"split": self.reference_split, "size": real, "cached": self.reference_cached},
                         "num_samples": generated, "sampling": "noise from N(0, I), labels uniform at random"}
            if model.num_classes and self.classifier is not None:
                protocol["label_accuracy"] = {"classifier": self.classifier.describe(),
                                              "samples_per_label": self.samples_per_label}
        elif kind == "translation":
            protocol |= {"reference": {"split": "test", "size": {d: self.compared[d][0] for d in model.GENERATORS},
                                       "translated": {d: self.compared[d][1] for d in model.GENERATORS},
                                       "paired": self.paired_truth},
                         "inference": model.inference,
                         "paired_scores": "L1, PSNR, SSIM on [0, 1] images, averaged over images"}
        else:
            protocol["reference"] = {"split": self.reference_split}
        if kind == "points":
            protocol |= {"num_samples": self.num_samples, "high_quality": "within 3 std of the nearest mode",
                         "covered": "nearest mode of at least one high-quality sample"}
        elif kind in ("generator", "translation"):
            protocol["kid"] = {"subset_size": self.effective_kid_subset, "subsets": KID_SUBSETS}
            if "prdc" in self.scores:
                protocol["prdc"] = {"nearest_k": PRDC_K, "implementation": "prdc (Naeem et al. 2020)",
                                    "distance": "euclidean, in the feature network's features"}
            protocol["scores"] = list(self.scores)
        return protocol

