"""GP-GAN: the Blending GAN (model=gpgan) trained, resumed and checked term by term (the weighted L2 and
adversarial loss, the authors' critic schedule, the low-resolution blend), and gan-blend with and without a
checkpoint. Its training pairs (data=blending_folder) are in tests/test_blending_pairs.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.assembly import load_model
from gan_cli.blending import poisson_blend
from gan_cli.commands.blend import blend_images, read_inputs, run_blend
from gan_cli.commands.sample import sample
from gan_cli.commands.train import train
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import NonSaturatingLoss, WassersteinLoss
from gan_cli.models.translation.gpgan import GPGAN
from gan_cli.models.translation.gpgan_nets import BlendingEncoderDecoder
from gan_cli.nets import DCGANDiscriminator
from tests.conftest import compose_train, run_cli
from tests.gpgan_helpers import gpgan_quick, write_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("blending") / "scenes")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, scenes) -> tuple[Path, dict[str, float]]:
    """gan-train model=gpgan for one short epoch: its run folder and the metrics it logged."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("gpgan") / "run"
    metrics = train(compose_train(run, [*gpgan_quick(scenes), "logger=csv", "callbacks=default"]))
    return run, metrics


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """src, dst and a mask of 45 x 37 px (not the Blending GAN's size), and a mask of another size."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:37, 0:45]
    images = {"src": rng.integers(0, 256, (37, 45, 3)), "dst": np.stack([4 * x, 5 * y, 2 * (x + y)], -1),
              "mask": np.where((abs(y - 18) < 8) & (abs(x - 22) < 10), 255, 0), "small_mask": np.full((30, 45), 255)}
    paths = {}
    for name, pixels in images.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(paths[name])
    return paths


def tiny_model(loss=None, l2_weight: float = 0.999, **settings) -> GPGAN:
    return GPGAN(BlendingEncoderDecoder(3, 16, 4, 4, 8), DCGANDiscriminator(3, 16, 4), loss or WassersteinLoss(),
                 torch.optim.Adam, l2_weight=l2_weight, **settings)


# --- the model ---------------------------------------------------------------------------------------
def test_a_short_run_trains_both_networks_with_finite_losses(smoke_run):
    run, metrics = smoke_run
    for name in ("train/d_loss", "train/g_loss", "train/g_l2", "train/g_adversarial"):
        assert math.isfinite(metrics[name]), name
    # the logged G loss is lambda * L2 + (1 - lambda) * adversarial of the same step
    weighted = 0.999 * metrics["train/g_l2"] + 0.001 * metrics["train/g_adversarial"]
    assert metrics["train/g_loss"] == pytest.approx(weighted, rel=1e-5)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    grid = Image.open(run / "samples" / "blends_latest.png")  # rows composite / blend / target, 3 examples each
    assert grid.size == (2 + 3 * 18, 2 + 3 * 18)
    model, _ = load_model(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, GPGAN) and model.d_updates == 12  # one critic update per batch
    assert model.schedule_position() == (3, 0)  # G after critic updates 2 (boost 2), 7 and 12 (d_steps 5)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, scenes, one_thread):
    # the epoch ends 4 critic updates into a G update's 5 (boost 3: G after critic updates 3, 8, 13, ...), so the
    # resumed run must take the schedule up where it stopped
    args = [*gpgan_quick(scenes), "model.critic_boost=3", "trainer.deterministic=true", "seed=7", "logger=none",
            "callbacks=default", "callbacks.sample_grid.every_n_batches=0"]
    train(compose_train(tmp_path / "straight", [*args, "trainer.max_epochs=2"]))
    train(compose_train(tmp_path / "first", args))
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    train(compose_train(tmp_path / "resumed", [*args, "trainer.max_epochs=2", f"ckpt_path={first}"]))
    expected, got = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
                     for run in ("straight", "resumed"))
    assert got["global_step"] == expected["global_step"] == 24 + 5  # 24 critic and 5 G updates
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), f"{key} differs after resume"


def test_the_generator_loss_weighs_l2_and_the_adversarial_term_by_lambda():
    class MeanCritic(torch.nn.Module):  # D(x) = the image's mean
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))

    blend, target = torch.full((2, 3, 16, 16), 0.5), torch.zeros(2, 3, 16, 16)
    for loss, adversarial in [(WassersteinLoss(), -0.5), (NonSaturatingLoss(), math.log1p(math.exp(-0.5)))]:
        for l2_weight in (0.999, 1.0, 0.0, 0.25):
            model = tiny_model(loss, l2_weight)
            model.discriminator = MeanCritic()
            terms = model.generator_terms(blend, target)
            assert float(terms["l2"]) == pytest.approx(0.25)  # mean of 0.5^2
            assert float(terms["adversarial"]) == pytest.approx(adversarial)
            assert float(model.generator_loss(terms)) == pytest.approx(l2_weight * 0.25 + (1 - l2_weight) * adversarial)
    with pytest.raises(UserError, match="model.l2_weight=1.5"):
        tiny_model(l2_weight=1.5)


def test_the_critic_schedule_is_the_authors_and_follows_the_critic_updates():
    model = tiny_model(critic_boost=3, critic_boost_first=2, critic_boost_every=4)  # d_steps 5
    due = []
    for done in range(30):
        model.d_updates = done
        due.append(model.generator_due())
    # G updates 0, 1 after 3 critic updates each, 2 and 3 after 5, 4 (a multiple of 4) after 3, then 5 again
    assert [i for i, d in enumerate(due) if d] == [2, 5, 10, 15, 18, 23, 28]
    resumed = tiny_model(critic_boost=3, critic_boost_first=2, critic_boost_every=4)
    resumed.d_updates = 17  # as a checkpoint restores it: the position is derived, not remembered
    assert resumed.schedule_position() == (4, 1)
    plain = tiny_model(critic_boost=None)
    plain.d_updates = 4
    assert plain.generator_due() and plain.schedule_position() == (0, 4)


def test_low_res_blend_is_the_generator_on_the_resized_composite_in_data_space():
    model = tiny_model().eval()
    composite = torch.rand(3, 37, 45)
    blend = model.low_res_blend(composite)
    assert blend.shape == (3, 16, 16) and 0 <= blend.min() and blend.max() <= 1
    resized = torch.nn.functional.interpolate(composite[None], size=(16, 16), mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = (model.generator(resized * 2 - 1) + 1) / 2
    torch.testing.assert_close(blend, expected[0].clamp(0, 1))
    with pytest.raises(UserError, match="1 channels"):
        model.low_res_blend(torch.rand(1, 16, 16))


def test_gan_sample_says_to_use_gan_blend(smoke_run):
    ckpt = smoke_run[0] / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match="use gan-blend ckpt_path="):
        sample(OmegaConf.create({"ckpt_path": str(ckpt), "seed": 0, "device": "cpu", "num_samples": 4}))


# --- gan-blend ---------------------------------------------------------------------------------------
def test_gan_blend_with_a_checkpoint_writes_the_gp_gan_blend_at_the_size_of_dst(tmp_path, smoke_run, pictures):
    ckpt = smoke_run[0] / "checkpoints" / "last.ckpt"
    out = tmp_path / "out" / "blended.png"
    result = run_cli([f"ckpt_path={ckpt}", f"src={pictures['src']}", f"dst={pictures['dst']}",
                      f"mask={pictures['mask']}", f"output={out}"], tmp_path, module="gan-blend")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "with GP-GAN" in result.stdout
    written = np.asarray(Image.open(out), dtype=np.float64).transpose(2, 0, 1) / 255
    assert written.shape == (3, 37, 45)
    model, _ = load_model(ckpt)
    expected = blend_images(*read_inputs(str(pictures["src"]), str(pictures["dst"]), str(pictures["mask"])), model)
    assert np.abs(written - expected).max() <= 0.5 / 255 + 1e-9


def test_gan_blend_without_a_checkpoint_is_poisson_blending(tmp_path, pictures):
    out = tmp_path / "poisson.png"
    result = run_cli([f"src={pictures['src']}", f"dst={pictures['dst']}", f"mask={pictures['mask']}",
                      f"output={out}"], tmp_path, module="gan-blend")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Poisson blending" in result.stdout
    src, dst, mask = read_inputs(str(pictures["src"]), str(pictures["dst"]), str(pictures["mask"]))
    written = np.asarray(Image.open(out), dtype=np.float64).transpose(2, 0, 1) / 255
    assert np.abs(written - poisson_blend(src, dst, mask)).max() <= 0.5 / 255 + 1e-9
    assert np.array_equal(written[:, ~mask], dst[:, ~mask])  # dst kept exactly outside the mask


def test_gan_blend_names_bad_inputs_without_a_traceback(tmp_path, pictures):
    other_size = run_cli([f"src={pictures['src']}", f"dst={pictures['dst']}", f"mask={pictures['small_mask']}"],
                         tmp_path, module="gan-blend")
    assert other_size.returncode == 1 and "mask=small_mask.png is 45x30 px but dst=dst.png is 45x37" in said(other_size)
    assert "Traceback" not in other_size.stderr + other_size.stdout
    assert not (tmp_path / "blended.png").exists()
    # the other mistakes take the same way out (a UserError, shown by gan_cli.cli without a traceback)
    for name in ("src", "dst", "mask"):
        with pytest.raises(UserError, match=rf"{name}=\S*nowhere.png: there is no such file"):
            read_inputs(**{"src": str(pictures["src"]), "dst": str(pictures["dst"]), "mask": str(pictures["mask"]),
                           name: str(tmp_path / "nowhere.png")})
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"src=\S*broken.png cannot be read as an image"):
        read_inputs(str(tmp_path / "broken.png"), str(pictures["dst"]), str(pictures["mask"]))
    with pytest.raises(UserError, match="src=src.png is 45x37 px but dst=small_mask.png is 45x30"):
        read_inputs(str(pictures["src"]), str(pictures["small_mask"]), str(pictures["mask"]))


def test_gan_blend_refuses_what_it_cannot_do(tmp_path, smoke_run, pictures):
    def settings(**values):
        return OmegaConf.create({"ckpt_path": None, "src": str(pictures["src"]), "dst": str(pictures["dst"]),
                                 "mask": str(pictures["mask"]), "output": str(tmp_path / "o.png"), "levels": None,
                                 "beta": 1.0, "sigma": 0.5, "form": "paper", "details": True, "device": "cpu",
                                 **values})

    with pytest.raises(UserError, match="gan-blend needs src=, mask="):
        run_blend(settings(src="???", mask="???"))
    with pytest.raises(UserError, match="would overwrite it"):
        run_blend(settings(output=str(pictures["dst"])))
    with pytest.raises(UserError, match="should name an image file"):
        run_blend(settings(output=str(tmp_path / "o.txt")))
    with pytest.raises(UserError, match="has no white pixels"):
        run_blend(settings(mask=_black_mask(tmp_path)))
    with pytest.raises(UserError, match="No checkpoint at ckpt_path="):
        run_blend(settings(ckpt_path=str(tmp_path / "missing.ckpt")))
    with pytest.raises(UserError, match="beta=0"):
        run_blend(settings(ckpt_path=str(smoke_run[0] / "checkpoints" / "last.ckpt"), beta=0))


def said(result) -> str:
    """What a command printed on stderr, with the line wrapping undone."""
    return " ".join(result.stderr.split())


def _black_mask(folder: Path) -> str:
    path = folder / "black.png"
    Image.new("L", (45, 37)).save(path)
    return str(path)
