"""The 2-D mixtures for mode collapse: their layout, the VEEGAN counts, and the scatter plot."""

from __future__ import annotations

import math

import pytest
import torch

from gan_cli.data.toy2d import Gaussians2D, mode_centers, mode_stats, scatter_image
from gan_cli.errors import UserError


def test_ring8_and_grid25_layouts():
    ring = mode_centers("ring8")
    assert ring.shape == (8, 2) and torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(ring[:, 1], ring[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles.diff(), torch.full((7,), math.pi / 4), atol=1e-6)
    grid = mode_centers("grid25")
    assert grid.shape == (25, 2) and set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    with pytest.raises(UserError, match="ring8, grid25"):
        mode_centers("spiral")


def test_points_sit_around_their_mode_and_splits_differ():
    data = Gaussians2D("ring8", size=4000, std=0.02, seed=3)
    offsets = data.points - data.centers[data.labels]
    assert offsets.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.bincount(data.labels, minlength=8).min() > 400  # equal weights
    point, label = data[0]
    assert point.shape == (2,) and 0 <= label < 8
    test = Gaussians2D("ring8", split="test", size=4000, seed=3)
    assert not torch.equal(test.points, data.points)


def test_real_data_covers_every_mode_with_high_quality_samples():
    for layout, modes in (("ring8", 8), ("grid25", 25)):
        data = Gaussians2D(layout, size=5000, std=0.02)
        stats = mode_stats(data.points, data.centers, std=0.02)
        assert stats["modes_covered"] == modes
        assert stats["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(r <= 3 std) in 2-D


def test_collapsed_and_scattered_samples_are_counted_as_such():
    centers = mode_centers("ring8")
    collapsed = centers[2] + 0.01 * torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    stats = mode_stats(collapsed, centers, std=0.02)
    assert stats["modes_covered"] == 1 and stats["high_quality"] > 0.9
    between = torch.zeros(100, 2)  # the centre of the ring: far from every mode
    assert mode_stats(between, centers, std=0.02) == {"modes_covered": 0, "high_quality": 0.0}
    half = torch.cat([collapsed[:50], between[:50]])
    assert mode_stats(half, centers, std=0.02, min_count=60)["modes_covered"] == 0


def test_scatter_image_draws_real_grey_and_generated_red_with_y_up():
    real = torch.tensor([[2.0, 0.0]])
    fake = torch.tensor([[0.0, 2.0], [10.0, 10.0]])  # the second lies outside the plot
    image = scatter_image(real, fake, extent=4.0, size=9)
    assert image.shape == (3, 9, 9)
    # x = 2 -> column 6; y = 0 -> row 4. x = 0 -> column 4; y = 2 -> row 2 (y grows upwards)
    assert image[:, 4, 6].tolist() == pytest.approx([0.6, 0.6, 0.6])
    assert image[:, 2, 4].tolist() == pytest.approx([1.0, 0.1, 0.1])
    assert int((image.sum(dim=0) > 0).sum()) == 2


def test_gan_on_ring8_logs_mode_numbers_and_a_scatter_plot_and_gan_eval_reports_them(make_cfg, one_thread):
    from pathlib import Path

    from PIL import Image

    from gan_cli.assembly import load_model
    from gan_cli.commands.evaluate import metrics_settings
    from gan_cli.commands.train import build
    from gan_cli.evaluation.config import build_evaluator

    cfg = make_cfg("model=gan", "data=ring8", "data.size=1024", "data.batch_size=128", "trainer=cpu",
                   "trainer.max_epochs=2", "model.generator.hidden=[16]", "model.discriminator.hidden=[16]",
                   "callbacks.mode_coverage.num_samples=500", "logger=none", "trainer.enable_progress_bar=false")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert 0 <= float(metrics["metrics/modes_covered"]) <= 8 and 0 <= float(metrics["metrics/high_quality"]) <= 1
    samples = Path(cfg.paths.output_dir) / "samples"
    assert Image.open(samples / "scatter_latest.png").size == (256, 256)
    assert not list(samples.glob("samples_*.png"))  # no image grids of (2, 1, 1) "images"
    loaded, run_config = load_model(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    evaluator = build_evaluator(metrics_settings(make_cfg("ckpt_path=x", config_name="eval"), run_config))
    scores = evaluator.evaluate(loaded, datamodule)
    assert set(scores) == {"modes_covered", "high_quality"}
    assert evaluator.last_protocol["model_kind"] == "points"


def test_points_datamodule_measures_points_in_the_plane():
    from gan_cli.data.points import PointsDataModule

    datamodule = PointsDataModule("ring8", size=800, scale=2.5)
    datamodule.setup()
    images = datamodule.train_set.images  # real points, divided by the scale
    assert images.shape == (800, 2, 1, 1) and images.abs().max() < 1
    stats = datamodule.mode_stats(images)
    assert stats["modes_covered"] == 8
    assert abs(stats["high_quality"] - (1 - math.exp(-4.5))) < 0.015  # P(|x| < 3 std) of a 2-D Gaussian: 98.9%
    collapsed = datamodule.mode_stats(images[datamodule.train_set.labels == 3])
    assert collapsed["modes_covered"] == 1
