"""UNIT (Liu et al. 2017) through gan-train and gan-translate: training with finite losses (with and without the
latent domain discriminator), the reference's defaults, the perceptual terms, the refusal of single-image data,
an exact resume, and gan-translate in both directions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.assembly import load_model
from gan_cli.checkpoint import read_checkpoint
from gan_cli.commands.train import build, train
from gan_cli.commands.translate import load_generator, translate
from gan_cli.errors import UserError
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.nets import PatchGANDiscriminator
from tests.conftest import QUICK
from tests.helpers import resumed_and_uninterrupted, same_state
from tests.unit_helpers import stand_in_unit

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["model.generator.dim=4", "model.generator.n_res=2", "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2", "model.latent_discriminator.width=4"]


def unit_quick(folders: dict[str, Path]) -> list[str]:
    """A quick CPU run on the tiny unpaired folders of the `image_pairs` fixture (6 images a domain, 3 batches)."""
    return ["model=unit", *TINY, "data=unpaired_folder", f"data.root={folders['unpaired']}", "data.crop_size=32",
            "data.batch_size=2", "data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]


# --- training through gan-train ------------------------------------------------------------------------
@pytest.mark.parametrize("latent", [False, True])
def test_unit_trains_with_finite_losses_and_the_optional_latent_discriminator(make_cfg, image_pairs, latent):
    extra = ["model.latent_gan_w=1.0"] if latent else []
    cfg = make_cfg(*unit_quick(image_pairs), *extra, "callbacks.sample_grid.every_n_batches=0")
    datamodule, module, trainer = build(cfg)
    assert (module.D_z is not None) == latent
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    logged = ["adv_A", "adv_B", "recon_x_A", "recon_x_B", "kl_A", "kl_B", "cyc_x_A", "cyc_x_B", "kl_cyc_A",
              "kl_cyc_B", "D_A", "D_B", "g_loss", "d_loss", "grad_norm_G", "grad_norm_D", "lr_G", "lr_D"]
    logged += ["latent_adv", "D_z"] if latent else []
    for name in logged:
        assert f"train/{name}" in metrics and math.isfinite(float(metrics[f"train/{name}"])), name
    assert ("train/D_z" in metrics) == latent
    now = module.state_dict()
    nets = ["G.encoders.A.", "G.encoders.B.", "G.shared_encoder.", "G.shared_decoder.", "G.decoders.A.",
            "G.decoders.B.", "D_A.", "D_B.", *(["D_z."] if latent else [])]
    for net in nets:
        assert any(not torch.equal(before[k], now[k]) for k in before if k.startswith(net)), f"{net} did not learn"
    if latent:  # one Adam for the image and latent discriminators: D_z's weights are in it
        d_params = {id(p) for group in trainer.optimizers[1].param_groups for p in group["params"]}
        assert all(id(p) in d_params for p in module.D_z.parameters())
    # per domain: real, reconstruction, translation, translated back
    grid = Image.open(cfg.paths.output_dir + "/samples/translations_latest.png")
    assert grid.size == (2 + 4 * 34, 2 + 8 * 34)


def test_defaults_follow_the_reference(make_cfg):
    cfg = make_cfg("model=unit")
    m = cfg.model
    assert (m.gan_w, m.recon_x_w, m.recon_kl_w, m.recon_x_cyc_w, m.recon_kl_cyc_w) == (1, 10, 0.01, 10, 0.01)
    assert m.latent_gan_w == 0 and m.perceptual is None and m.lr == 1e-4 and m.init == "kaiming"
    assert list(m.optimizer.betas) == [0.5, 0.999] and m.optimizer.weight_decay == 1e-4
    assert (m.generator.n_downsample, m.generator.n_res, m.generator.n_shared) == (2, 4, 1)
    assert cfg.loss._target_.endswith("LeastSquaresLoss") and cfg.data.dataset.name == "horse2zebra"


def test_the_perceptual_group_adds_its_terms_both_ways(make_cfg, image_pairs):
    cfg = make_cfg(*unit_quick(image_pairs), "model/perceptual=network",
                   "model.perceptual.network._target_=torch.nn.AvgPool2d", "+model.perceptual.network.kernel_size=4")
    datamodule, module, _ = build(cfg)
    assert isinstance(module.perceptual, PerceptualLoss)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(0)
    terms, a, b = module.generator_terms(batch["A"], batch["B"])
    assert terms["perc_A"].item() == pytest.approx(module.perceptual(batch["A"], a.translation).item())
    assert terms["perc_B"].item() == pytest.approx(module.perceptual(batch["B"], b.translation).item())
    assert terms["perc_A"].item() > 0


def test_single_image_data_is_refused_with_the_fix(make_cfg):
    cfg = make_cfg("model=unit", *TINY, *QUICK)
    datamodule, module, trainer = build(cfg)
    with pytest.raises(UserError, match="unpaired image data"):
        trainer.fit(module, datamodule=datamodule)
    with pytest.raises(UserError, match="latent_gan_w"):
        stand_in_unit(latent_gan_w=-1.0)


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, image_pairs):
    common = [*unit_quick(image_pairs), "model.latent_gan_w=1.0", "trainer.max_epochs=2", "model.lr_constant_epochs=1",
              "model.lr_decay_epochs=1", "trainer.deterministic=true", "logger=none", "callbacks=default",
              "callbacks.sample_grid.every_n_batches=0"]
    expected, resumed = resumed_and_uninterrupted(tmp_path, common)
    assert resumed["epoch"] == expected["epoch"] == 1
    assert same_state(expected["state_dict"], resumed["state_dict"])
    assert expected["lr_schedulers"] == resumed["lr_schedulers"]


# --- gan-translate -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, image_pairs) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("unit_run")
    from tests.conftest import compose_train

    train(compose_train(root, [*unit_quick(image_pairs), "logger=none", "callbacks=checkpoints"]))
    return root / "checkpoints" / "last.ckpt"


def test_gan_translate_works_both_ways(tmp_path, checkpoint, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)).save(photos / "wide.png")  # padded to 32 x 44

    def refuse(*args, **kwargs):
        raise AssertionError("a discriminator was built")

    ckpt = read_checkpoint(checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(PatchGANDiscriminator, "__init__", refuse)
        assert load_generator(ckpt, "AtoB")[1] == "G_AB" and load_generator(ckpt, "BtoA")[1] == "G_BA"
    model, _ = load_model(checkpoint)
    x = torch.from_numpy(np.asarray(Image.open(photos / "wide.png"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
    written = {}
    for direction in ("AtoB", "BtoA"):
        out, _ = translate(OmegaConf.create({"ckpt_path": str(checkpoint), "input": str(photos), "device": "cpu",
                                             "output": str(tmp_path / direction), "direction": direction,
                                             "inference": None}))
        image = np.asarray(Image.open(out[0]), dtype=np.float32) / 255
        assert image.shape == (30, 42, 3)
        expected = (model.translate(x[None], direction)[0].permute(1, 2, 0).numpy() + 1) / 2  # the trained model's
        assert np.abs(image - expected).max() < 1 / 255 + 1e-4
        written[direction] = image
    assert not np.array_equal(written["AtoB"], written["BtoA"])
    ckpt["gan_cli"]["config"]["data"]["direction"] = "BtoA"  # a model trained BtoA has its domains swapped
    assert load_generator(ckpt, "AtoB")[1] == "G_BA"
    with pytest.raises(UserError, match="not AtoA"):
        model.translate(x[None], "AtoA")
