"""The scores, as torchmetrics modules updated batch by batch (their states are summed or gathered over
DDP ranks when computed). Each takes features or logits that a feature network computed once per batch,
so one pass of (say) InceptionV3 serves FID, KID and IS together."""

from __future__ import annotations

import warnings
from typing import Iterable

from torch import Tensor, nn
from torchmetrics.aggregation import CatMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.regression import MeanAbsoluteError

from gan_cli.errors import UserError

DISTRIBUTION_SCORES = ("fid", "kid", "is", "prdc")
KID_SUBSETS = 100  # random subsets KID is averaged over (torchmetrics' default)
PRDC_K = 5  # the nearest neighbours of precision/recall/density/coverage (Naeem et al. 2020 recommend 5)


class Precomputed(nn.Module):
    """The `feature` network handed to a torchmetrics metric when the features are computed beforehand:
    it passes them through. (Given the real network, each metric would run it again.)"""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class DistributionScores(nn.Module):
    """FID and KID between real and generated images, the Inception Score of the generated ones, and precision,
    recall, density and coverage ("prdc": Kynkaanniemi et al. 2019, Naeem et al. 2020, computed by the authors'
    `prdc` package), on features (and logits) from a feature network. The real images' statistics are kept
    across `reset()` (they are computed once per run); the metrics are created at the first batch, when the
    feature width is known."""

    def __init__(self, scores: Iterable[str] = DISTRIBUTION_SCORES, kid_subsets: int = KID_SUBSETS,
                 is_splits: int = 10) -> None:
        super().__init__()
        self.scores = [s for s in scores if s in DISTRIBUTION_SCORES]
        self.kid_subsets, self.is_splits = kid_subsets, is_splits
        self.fid: FrechetInceptionDistance | None = None
        self.kid: KernelInceptionDistance | None = None
        self.inception_score: InceptionScore | None = None
        # prdc compares every generated feature vector with every real one: both sets are kept (gathered over ranks)
        self.prdc_real, self.prdc_fake = (CatMetric(), CatMetric()) if "prdc" in self.scores else (None, None)
        # images seen, over all ranks once computed: the record says how many were actually compared
        self.real_count, self.fake_count = SumMetric(), SumMetric()

    def _create(self, features: Tensor) -> None:
        width = features.size(1)
        # KID and IS keep every feature vector (their documented design); their warning says so on each run
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        if "fid" in self.scores:
            self.fid = FrechetInceptionDistance(Precomputed(width), reset_real_features=False).to(features.device)
        if "kid" in self.scores:
            self.kid = KernelInceptionDistance(Precomputed(width), subsets=self.kid_subsets,
                                               reset_real_features=False).to(features.device)

    @property
    def has_real(self) -> bool:
        return self.fid is not None or self.kid is not None

    def update(self, features: Tensor, logits: Tensor | None, real: bool) -> None:
        if self.fid is None and self.kid is None:
            self._create(features)
        if "is" in self.scores and not real and logits is not None and self.inception_score is None:
            self.inception_score = InceptionScore(Precomputed(logits.size(1)), splits=self.is_splits)
            self.inception_score.to(features.device)
        (self.real_count if real else self.fake_count).update(float(len(features)))
        features = features.double()  # FID's covariance sums are accumulated in float64
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.update(features, real=real)
        if self.prdc_real is not None:
            (self.prdc_real if real else self.prdc_fake).update(features.float())
        if not real and self.inception_score is not None:
            self.inception_score.update(logits.double())

    def counts(self) -> tuple[int, int]:
        """(real, generated) images compared, summed over DDP ranks."""
        return int(self.real_count.compute()), int(self.fake_count.compute())

    def compute(self, kid_subset_size: int) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
        if self.kid is not None:
            self.kid.subset_size = kid_subset_size
            mean, std = self.kid.compute()
            out["kid_mean"], out["kid_std"] = float(mean), float(std)
        if self.inception_score is not None:
            mean, std = self.inception_score.compute()
            out["is_mean"], out["is_std"] = float(mean), float(std)
        if self.prdc_real is not None:
            out |= precision_recall_density_coverage(self.prdc_real.compute(), self.prdc_fake.compute())
        return out

    def reset(self) -> None:
        """Forget the generated images (the real ones are kept)."""
        for metric in (self.fid, self.kid, self.inception_score, self.fake_count, self.prdc_fake):
            if metric is not None:
                metric.reset()


def precision_recall_density_coverage(real: Tensor, fake: Tensor, nearest_k: int = PRDC_K) -> dict[str, float]:
    """Precision (how many samples lie on the real images' manifold), recall (how much of the real manifold the
    samples reach), density and coverage (their outlier-robust versions), from k-nearest-neighbour balls."""
    import contextlib
    import io

    from prdc import compute_prdc

    if min(len(real), len(fake)) <= nearest_k:
        raise UserError(f"precision/recall (metrics.scores prdc) needs more than {nearest_k} real and generated "
                        f"images; got {len(real)} and {len(fake)}. Raise metrics.num_samples.")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the counts
        values = compute_prdc(real.double().cpu().numpy(), fake.double().cpu().numpy(), nearest_k)
    return {name: float(value) for name, value in values.items()}


class LabelAccuracy(nn.Module):
    """How often a classifier recognises the label a conditional model was asked for: per label (recall
    of each class) and their mean."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.per_label = MulticlassAccuracy(num_classes, average=None)

    def update(self, logits: Tensor, labels: Tensor) -> None:
        self.per_label.update(logits, labels)

    def compute(self, name: str = "label_accuracy") -> dict[str, float]:
        per_label = self.per_label.compute()
        out = {name: float(per_label.mean())}
        out.update({f"{name}_{label}": float(value) for label, value in enumerate(per_label)})
        return out

    def reset(self) -> None:
        self.per_label.reset()


class PairedScores(nn.Module):
    """Translated images against their paired truth, both in [0, 1]: mean L1, and PSNR and SSIM averaged
    over images."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = MeanAbsoluteError()
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def update(self, output: Tensor, target: Tensor) -> None:
        self.l1.update(output, target)
        self.psnr.update(output, target)
        self.ssim.update(output, target)

    def compute(self) -> dict[str, float]:
        return {"l1": float(self.l1.compute()), "psnr": float(self.psnr.compute()), "ssim": float(self.ssim.compute())}

    def reset(self) -> None:
        for metric in (self.l1, self.psnr, self.ssim):
            metric.reset()


def check_scores(scores: Iterable[str]) -> list[str]:
    scores = list(scores)
    unknown = [s for s in scores if s not in DISTRIBUTION_SCORES]
    if unknown:
        raise UserError(f"metrics.scores has {unknown[0]!r}; choose from {', '.join(DISTRIBUTION_SCORES)} "
                        "(label accuracy and the paired L1/PSNR/SSIM are added where they apply).")
    return scores
