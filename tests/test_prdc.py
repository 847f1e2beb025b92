"""Precision, recall, density and coverage (metrics.scores prdc): on hand-made feature sets, a copy of the real set
scores 1 on all four and a collapsed generator keeps its precision but loses recall and coverage; during training
they are logged as metrics/* with their protocol, an early sign of mode collapse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gan_cli.commands.train import train
from gan_cli.metrics.scores import DistributionScores
from tests.conftest import POOLED, QUICK, SMALL
from tests.helpers import refusal


def scores_of(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    scores = DistributionScores(["prdc"])
    scores.update(real, None, real=True)
    scores.update(fake, None, real=False)
    return scores.compute(kid_subset_size=2)


def test_a_copy_of_the_real_set_scores_one_and_a_collapsed_one_loses_recall_and_coverage():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=generator)
    same = scores_of(real, real + 1e-4 * torch.randn(200, 8, generator=generator))
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    assert math.isclose(same["density"], 1.0, abs_tol=0.15)  # 1 in expectation for matching sets
    collapsed = scores_of(real, real[:3].repeat(67, 1)[:200] + 1e-4 * torch.randn(200, 8, generator=generator))
    assert collapsed["precision"] == 1.0  # every sample is a real-looking one ...
    assert collapsed["recall"] < 0.1 and collapsed["coverage"] < 0.1  # ... of very few kinds


def test_the_reset_forgets_the_samples_and_keeps_the_real_set():
    real, fake = torch.randn(50, 4), torch.randn(50, 4) + 10
    scores = DistributionScores(["prdc"])
    scores.update(real, None, real=True)
    scores.update(fake, None, real=False)
    assert scores.compute(2)["precision"] == 0.0
    scores.reset()
    scores.update(real.clone(), None, real=False)
    assert scores.compute(2)["precision"] == 1.0


def test_too_few_images_are_named():
    error = refusal(lambda: scores_of(torch.randn(4, 3), torch.randn(4, 3)))
    assert "more than 5 real and generated" in str(error)


@pytest.mark.slow
def test_precision_and_recall_are_logged_during_training_with_their_protocol(make_cfg, one_thread):
    cfg = make_cfg(*QUICK, *SMALL["dcgan"], *POOLED, "metrics.scores=[fid,prdc]", "logger=csv")
    metrics = train(cfg)
    assert {"metrics/fid", "metrics/precision", "metrics/recall", "metrics/density", "metrics/coverage"} <= set(metrics)
    assert 0 <= metrics["metrics/recall"] <= 1 and 0 <= metrics["metrics/coverage"] <= 1
    (record,) = json.loads((Path(cfg.paths.output_dir) / "checkpoints" / "metrics.json").read_text())
    assert record["protocol"]["prdc"]["nearest_k"] == 5 and "recall" in record["scores"]
