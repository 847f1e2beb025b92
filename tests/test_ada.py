"""Adaptive discriminator augmentation (Karras et al. 2020), tricks=[ada]: the 'bgc' pipeline (identity at p = 0,
every sample changed at p = 1, each transformation shape-keeping and differentiable, blitting exact, colour
with the paper's distributions, per-sample draws), p's adjustment from the signs of D's real scores (up when D
overfits, down and clamped at 0 when it does not, fixed with target=null), and the trick through the real
config: it trains, logs p, resumes exactly, refuses bad options and reads nothing on the host between log steps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_cli.commands.train import build
from gan_cli.errors import UserError
from gan_cli.nets.ada_augment import GROUPS, AdaAugment, transforms_of
from gan_cli.tricks import ADA
from tests.conftest import QUICK, SMALL
from tests.helpers import refusal
from tests.trick_layer_helpers import images

pytestmark = pytest.mark.usefixtures("one_thread")

EVERY = [name for names in GROUPS.values() for name in names]
#: the colour transformations that need RGB: on grey images they change nothing
RGB_ONLY = ("lumaflip", "hue", "saturation")


def changed(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) booleans: which samples differ from the input."""
    return (out != x).flatten(1).any(dim=1)


# --------------------------------------------------------------------------------------------------------
# the pipeline


@pytest.mark.parametrize("channels", [1, 3])
def test_p_0_is_the_identity_and_p_1_changes_every_sample(channels):
    torch.manual_seed(0)
    augment, x = AdaAugment(), images(16, channels)
    assert torch.equal(augment(x, torch.tensor(0.0)), x)
    assert changed(augment(x, torch.tensor(1.0)), x).all()
    assert transforms_of("bgc") == tuple(EVERY) and transforms_of("b,hue") == (*GROUPS["b"], "hue")
    with pytest.raises(ValueError, match="'flip'"):
        AdaAugment("b,flip")


@pytest.mark.parametrize("name", EVERY)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_transformation_keeps_the_shape_and_passes_gradients(name, channels):
    torch.manual_seed(1)
    x = images(8, channels).requires_grad_()
    out = AdaAugment(name)(x, torch.tensor(1.0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    moved = changed(out.detach(), x.detach())
    if channels == 1 and name in RGB_ONLY:
        assert not moved.any()
    elif name in ("xflip", "rotate90", "lumaflip"):  # a random choice: 1 in 2 (1 in 4) draws changes nothing
        assert moved.any()
    else:
        assert moved.sum() >= 6  # (integer translation by 0 pixels is possible)


def test_flips_and_quarter_turns_are_exact_permutations_of_the_pixels():
    torch.manual_seed(2)
    x = images(32)
    flipped = AdaAugment("xflip")(x, torch.tensor(1.0))
    turned = AdaAugment("rotate90")(x, torch.tensor(1.0))
    flips = [int(torch.equal(out, image.flip(-1))) for out, image in zip(flipped, x)]
    assert all(torch.equal(out, image.flip(-1) if flip else image) for out, image, flip in zip(flipped, x, flips))
    assert 0 < sum(flips) < 32
    turns = [[torch.equal(out, torch.rot90(image, k, dims=(1, 2))) for k in range(4)] for out, image in zip(turned, x)]
    assert all(sum(found) == 1 for found in turns) and all(any(t[k] for t in turns) for k in range(4))
    rectangles = torch.rand(16, 1, 6, 10)  # not square: half turns only
    out = AdaAugment("rotate90")(rectangles, torch.tensor(1.0))
    assert all(torch.equal(o, r) or torch.equal(o, r.flip(-1, -2)) for o, r in zip(out, rectangles))


def test_integer_translation_shifts_by_at_most_an_eighth_with_reflection():
    torch.manual_seed(3)
    x = images(16, size=16)
    out = AdaAugment("xint")(x, torch.tensor(1.0))
    padded = F.pad(x, [2, 2, 2, 2], mode="reflect")  # shifts of up to 16 / 8 = 2 pixels
    for o, p in zip(out, padded):
        shifts = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(o, p[:, dy:dy + 16, dx:dx + 16])]
        assert shifts, "not a reflected shift of at most 2 pixels"


def blob_moments(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: the centre (N, 2) and the spread (N, 2) along x and y of a blob on a black background."""
    size = batch.size(-1)
    centred = torch.arange(size) - (size - 1) / 2
    ys, xs = torch.meshgrid(centred, centred, indexing="ij")
    weights = batch[:, 0] / batch[:, 0].sum(dim=(1, 2), keepdim=True)
    centre = torch.stack([(weights * axis).sum(dim=(1, 2)) for axis in (xs, ys)], dim=1)
    spread = torch.stack([(weights * (axis - c.view(-1, 1, 1)) ** 2).sum(dim=(1, 2)).sqrt()
                          for axis, c in zip((xs, ys), centre.T)], dim=1)
    return centre, spread


def test_geometric_translation_and_scaling_follow_the_paper_s_distributions():
    torch.manual_seed(6)
    size = 48
    centred = torch.arange(size) - (size - 1) / 2
    blob = torch.exp(-(centred.view(-1, 1) ** 2 + centred.view(1, -1) ** 2) / 18).expand(600, 1, size, size)
    _, spread = blob_moments(blob[:1])
    centre, _ = blob_moments(AdaAugment("xfrac")(blob, torch.tensor(1.0)))
    assert ((centre.std(dim=0) / size - 0.125).abs() < 0.012).all()  # N(0, 0.125^2) of the size
    _, scaled = blob_moments(AdaAugment("scale")(blob, torch.tensor(1.0)))
    torch.testing.assert_close(scaled[:, 0], scaled[:, 1])  # isotropic
    assert abs(float((scaled[:, 0] / spread[0, 0]).log2().std()) - 0.2) < 0.02  # lognormal, std 0.2 ln 2


def test_colour_follows_the_paper_s_distributions():
    torch.manual_seed(4)
    grey = torch.zeros(4000, 1, 2, 2)
    brightness = AdaAugment("brightness")(grey, torch.tensor(1.0))[:, 0, 0, 0]
    assert abs(float(brightness.std()) - 0.2) < 0.01 and abs(float(brightness.mean())) < 0.01
    contrast = AdaAugment("contrast")(grey + 0.5, torch.tensor(1.0))[:, 0, 0, 0] / 0.5
    assert abs(float(contrast.log2().std()) - 0.5) < 0.02  # lognormal, std 0.5 ln 2 of the natural log
    x = images(64)
    grey_part = x.mean(dim=1, keepdim=True)
    hue = AdaAugment("hue")(x, torch.tensor(1.0))
    torch.testing.assert_close(hue.mean(dim=1, keepdim=True), grey_part)  # a rotation about the grey axis
    torch.testing.assert_close((hue - grey_part).norm(dim=1), (x - grey_part).norm(dim=1))
    flipped = AdaAugment("lumaflip")(x, torch.tensor(1.0))
    which = changed(flipped, x)
    torch.testing.assert_close(flipped[which], (x - 2 * grey_part)[which])  # grey negated, colour kept
    saturated = AdaAugment("saturation")(x, torch.tensor(1.0))
    factors = ((saturated - grey_part) / (x - grey_part)).flatten(1).median(dim=1).values
    assert abs(float(factors.log2().std()) - 1.0) < 0.3


def test_each_sample_draws_for_itself():
    torch.manual_seed(5)
    x = images(1).expand(400, 3, 16, 16)
    out = AdaAugment("brightness")(x, torch.tensor(0.5))
    assert 0.4 < float(changed(out, x).float().mean()) < 0.6
    whole = AdaAugment()(x[:16], torch.tensor(1.0))
    assert len({tuple(sample.flatten().tolist()) for sample in whole}) == 16


# --------------------------------------------------------------------------------------------------------
# p's adjustment


def d_updates(ada: ADA, count: int, sign: float, batch: int = 8) -> list[float]:
    """`count` D updates whose real scores all have `sign`; p after each."""
    seen = []
    for _ in range(count):
        ada.discriminator_terms(None, {}, None, torch.zeros(batch, 3, 4, 4), None, torch.full((batch,), sign))
        ada.after_discriminator_step(None)
        seen.append(float(ada.p))
    return seen


def test_p_rises_by_a_step_per_interval_while_d_overfits_and_falls_to_0_when_it_does_not():
    ada = ADA(ada_kimg=0.16, interval=4)  # a step of 8 * 4 / 160 = 0.2
    assert d_updates(ada, 12, +1.0) == pytest.approx([0] * 3 + [0.2] * 4 + [0.4] * 4 + [0.6])
    assert float(ada.r_t) == 1.0
    assert d_updates(ada, 16, -1.0) == pytest.approx([0.6] * 3 + [0.4] * 4 + [0.2] * 4 + [0.0] * 5, abs=1e-6)
    assert float(ada.r_t) == -1.0 and float(ada.p) == 0.0  # clamped
    mixed = ADA(initial_p=0.5, ada_kimg=0.16, interval=1, target=0.6)  # r_t = 0.5 < 0.6: down
    mixed.discriminator_terms(None, {}, None, torch.zeros(4, 3, 4, 4), None, torch.tensor([1.0, 1.0, 1.0, -1.0]))
    mixed.after_discriminator_step(None)
    assert float(mixed.r_t) == 0.5 and float(mixed.p) == pytest.approx(0.5 - 4 / 160)


def test_fixed_p_and_scores_of_critics_d_s_step_did_not_follow():
    fixed = ADA(initial_p=0.3, target=None, interval=2)
    assert d_updates(fixed, 6, +1.0) == pytest.approx([0.3] * 6) and float(fixed.r_t) == 1.0
    ada = ADA(ada_kimg=0.16, interval=1)
    ada.discriminator_terms(None, {}, None, torch.zeros(8, 3, 4, 4), None, torch.full((8,), 1.0))
    ada.after_generator_step(None)  # e.g. unrolled's look-ahead critics during G's update: not counted
    ada.discriminator_terms(None, {}, None, torch.zeros(8, 3, 4, 4), None, torch.full((8,), -1.0))
    ada.after_discriminator_step(None)
    assert float(ada.r_t) == -1.0
    assert {"p", "r_t", "pending", "totals", "images", "updates"} <= set(ada.state_dict())
    for points in (torch.zeros(4, 2), torch.zeros(4, 2, 1, 1)):  # data=ring8's points are (2, 1, 1) "images"
        with pytest.raises(UserError, match=r"tricks=\[ADA\] augments images"):
            ada.augment(points)


# --------------------------------------------------------------------------------------------------------
# through the config

TINY_DCGAN = [*QUICK, *SMALL["dcgan"], "data.image_size=16", "logger=csv", "tricks=[ada]"]


def test_tricks_ada_trains_moves_p_and_logs_it(make_cfg):
    cfg = make_cfg(*TINY_DCGAN, "tricks.ada.ada_kimg=0.01", "tricks.ada.interval=1", "tricks.ada.initial_p=0.5")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert all(math.isfinite(float(metrics[f"train/{name}"])) for name in ("d_loss", "g_loss"))
    ada = module.tricks["ada"]
    assert float(ada.p) != 0.5 and int(ada.updates) == 4  # each step moves p by 16 / 10 (clamped)
    assert float(metrics["train/ada_p"]) == float(ada.p) and float(metrics["train/ada_r_t"]) == float(ada.r_t)


@pytest.mark.parametrize("setting, value", [("initial_p", 1.5), ("initial_p", -0.1), ("target", 1.0),
                                            ("target", 0.0), ("ada_kimg", 0), ("interval", 0), ("augment", "bgx")])
def test_bad_options_are_refused(make_cfg, setting, value):
    cfg = make_cfg(*TINY_DCGAN, f"tricks.ada.{setting}={value}")
    assert f"tricks.ada.{setting}" in str(refusal(lambda: build(cfg)))


def test_p_is_restored_on_resume(tmp_path):
    from tests.resume_helpers import kill_and_resume
    from tests.test_resume_matrix import BASE, FAKE

    overrides = [*BASE, *SMALL["dcgan"], *FAKE, "tricks=[ada]", "tricks.ada.initial_p=0.5", "tricks.ada.interval=2",
                 "tricks.ada.ada_kimg=0.64"]  # a step of 16 * 2 / 640 = 0.05 every other batch
    at, different, compared = kill_and_resume(tmp_path, overrides, 9, seed=7)
    assert not different, f"killed after batch {at}: {different[:4]}"
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert float(state["tricks.ada.p"]) != 0.5 and int(state["tricks.ada.updates"]) == 9


def test_no_device_value_is_read_on_the_host_between_log_steps(make_cfg):
    from tests.sync_detector import HostReadsBetweenLogSteps
    from tests.test_engine import SPARSE_LOGS

    cfg = make_cfg(*QUICK, "data.dataset.size=32", "data.batch_size=8", *SMALL["dcgan"], *SPARSE_LOGS,
                   "tricks=[ada]", "tricks.ada.interval=1", "tricks.ada.ada_kimg=0.01")
    datamodule, module, trainer = build(cfg)
    detector = HostReadsBetweenLogSteps()
    trainer.callbacks.insert(len(trainer.callbacks) - 2, detector)
    trainer.fit(module, datamodule=datamodule)
    assert detector.checked_batches >= 3 and int(module.tricks["ada"].updates) == 8
    assert not detector.found, f"{len(detector.found)} host reads:\n{detector.sites()}"
