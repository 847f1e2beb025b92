"""UNIT (Liu et al. 2017): shared blocks are one set of parameters, the KL term's closed form, the cycle through
the latent space, the objective term by term, training (with and without the latent domain discriminator), an
exact resume, and gan-translate in both directions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn
from torch.distributions import Normal, kl_divergence

from gan_cli.checkpoint import load_model, read_checkpoint
from gan_cli.errors import UserError
from gan_cli.losses import LeastSquaresLoss
from gan_cli.losses.perceptual import PerceptualLoss
from gan_cli.models.translation import translate_images
from gan_cli.models.unit import UNIT, latent_kl
from gan_cli.nets import PatchGANDiscriminator
from gan_cli.nets.unit import UNITGenerator
from gan_cli.runner import build, train
from gan_cli.translating import load_generator, translate
from tests.conftest import QUICK
from tests.helpers import resumed_and_uninterrupted, same_state

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["model.generator.dim=4", "model.generator.n_res=2", "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2", "model.latent_discriminator.width=4"]


def unit_quick(folders: dict[str, Path]) -> list[str]:
    """A quick CPU run on the tiny unpaired folders of the `image_pairs` fixture (6 images a domain, 3 batches)."""
    return ["model=unit", *TINY, "data=unpaired_folder", f"data.root={folders['unpaired']}", "data.crop_size=32",
            "data.batch_size=2", "data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]


# --- the networks ------------------------------------------------------------------------------------
def tiny_generator() -> UNITGenerator:
    torch.manual_seed(0)
    return UNITGenerator(channels=3, dim=4, n_downsample=2, n_res=3, n_shared=1)


def used_by(generator: UNITGenerator, domain: str, x: torch.Tensor) -> set[int]:
    """The ids of the parameters that a reconstruction loss of `domain` alone sends a gradient to."""
    generator.zero_grad(set_to_none=True)
    generator.decode(generator.encode(x, domain), domain).abs().mean().backward()
    return {id(p) for p in generator.parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_the_shared_blocks_are_one_set_of_parameters_in_both_domains():
    g = tiny_generator()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    shared = {id(p) for m in (g.shared_encoder, g.shared_decoder) for p in m.parameters()}
    assert shared and len(list(g.shared_encoder)) == len(list(g.shared_decoder)) == 1
    # the two domains' paths meet exactly in the shared blocks: the same tensors, not copies
    assert used_by(g, "A", x) & used_by(g, "B", x) == shared
    assert used_by(g, "A", x).isdisjoint(id(p) for p in g.encoders["B"].parameters())
    # both translators (and the state_dict) hold each shared tensor once
    for source, target in (("A", "B"), ("B", "A")):
        assert g.translator(source, target).generator.shared_encoder is g.shared_encoder
    assert sum(k.startswith("shared_encoder.") for k in g.state_dict()) == len(g.shared_encoder.state_dict())

    # a step on domain A's loss alone changes what domain B computes, through the shared blocks only
    before_B = g.encode(x, "B").detach()
    before_B_front = g.encoders["B"](x).detach()
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    opt.zero_grad()
    g.decode(g.encode(x, "A"), "A").abs().mean().backward()
    assert all(p.grad is None for p in g.encoders["B"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.shared_encoder.parameters())
    opt.step()
    assert torch.equal(g.encoders["B"](x), before_B_front)
    assert not torch.allclose(g.encode(x, "B"), before_B)


def test_the_kl_term_is_the_references_mean_of_mu_squared_and_matches_the_closed_form():
    mu = torch.randn(3, 8, 4, 4)
    closed_form = kl_divergence(Normal(mu, 1.0), Normal(torch.zeros_like(mu), 1.0)).sum()  # sum(mu^2) / 2
    assert closed_form.item() == pytest.approx(0.5 * mu.pow(2).sum().item(), rel=1e-5)
    assert latent_kl(mu).item() == pytest.approx(2 * closed_form.item() / mu.numel(), rel=1e-5)
    assert latent_kl(torch.zeros(2, 4)).item() == 0.0


def test_codes_get_unit_variance_noise_and_translation_decodes_the_mean():
    g = tiny_generator()
    mu = torch.zeros(4000)
    z = g.sample(mu)
    assert abs(z.mean().item()) < 0.1 and z.std().item() == pytest.approx(1.0, abs=0.05)
    x = torch.rand(1, 3, 16, 16)
    translator = g.translator("A", "B").eval()
    assert torch.equal(translator(x), translator(x))  # no noise at test time
    assert torch.allclose(translator(x), g.decode(g.encode(x, "A"), "B"))
    with pytest.raises(ValueError, match="multiples of 4"):
        translator(torch.rand(1, 3, 18, 16))
    g.eval()  # translating through a view leaves the generator in the mode it was in
    translate_images(g.translator("B", "A"), torch.rand(1, 3, 18, 14))
    assert not g.training
    with pytest.raises(ValueError, match="n_shared"):
        UNITGenerator(channels=1, n_res=2, n_shared=3)


# --- the objective with stand-in networks --------------------------------------------------------------
class Flip(nn.Module):
    """A stand-in UNITGenerator: encodes by identity, decodes as A by identity and as B by negation; the latent
    noise is a constant 0.5. Every term of the objective is then known by hand. Records its calls."""

    latent_channels = 3

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[str, str, torch.Tensor]] = []

    def encode(self, x, domain):
        self.calls.append(("encode", domain, x))
        return x.clone()

    def decode(self, z, domain):
        self.calls.append(("decode", domain, z))
        return z.clone() if domain == "A" else -z

    @staticmethod
    def sample(mu):
        return mu + 0.5


class Constant(nn.Module):
    """A 'discriminator' scoring every patch 1 (real for least squares: no adversarial loss); remembers its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x)
        return torch.ones(x.size(0), 1, 2, 2)


def stand_in_unit(**kwargs) -> UNIT:
    return UNIT(generator=Flip, discriminator=Constant, loss=LeastSquaresLoss(),
                optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr), **kwargs)


def test_the_cycle_goes_through_the_latent_space():
    model = stand_in_unit()
    a = torch.rand(2, 3, 4, 4)
    result = model.latent_pass(a, "A")
    calls = model.G.calls
    # encode as A, decode as B, encode that as B, decode as A (the cycle); and decode as A (reconstruction)
    assert [(op, d) for op, d, _ in calls] == [("encode", "A"), ("decode", "B"), ("encode", "B"), ("decode", "A"),
                                              ("decode", "A")]
    assert calls[2][2] is result.translation  # the translation itself is encoded again
    assert torch.allclose(calls[3][2], result.cycle_mu + 0.5)  # the cycle decodes a noisy code
    assert torch.allclose(result.cycle, -a)  # -(a + 0.5) + 0.5 decoded as A
    assert torch.allclose(result.reconstruction, a + 0.5) and torch.allclose(result.translation, -(a + 0.5))
    model.G.calls.clear()
    assert stand_in_unit(recon_x_cyc_w=0.0).latent_pass(a, "B").cycle is None


def test_generator_terms_by_hand_with_the_references_weights():
    seen = []

    def perceptual(x, y):
        seen.append((x, y))
        return (x - y).abs().mean()

    model = stand_in_unit(perceptual=perceptual)
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4) - 1
    terms, pass_a, pass_b = model.generator_terms(a, b)
    mean = lambda t: t.mean().item()  # noqa: E731
    expected = {
        "adv_A": 0.0, "adv_B": 0.0,                              # D scores 1 everywhere: no LSGAN loss
        "recon_x_A": 10 * 0.5,                                   # decode_A(a + 0.5) = a + 0.5
        "recon_x_B": 10 * mean((-(b + 0.5) - b).abs()),          # decode_B(b + 0.5) = -(b + 0.5)
        "kl_A": 0.01 * mean(a ** 2), "kl_B": 0.01 * mean(b ** 2),
        "kl_cyc_A": 0.01 * mean((a + 0.5) ** 2),                 # mu_ab = encode_B(-(a + 0.5))
        "kl_cyc_B": 0.01 * mean((b + 0.5) ** 2),                 # mu_ba = encode_A(b + 0.5)
        "cyc_x_A": 10 * mean((-a - a).abs()),                    # decode_A(-(a + 0.5) + 0.5) = -a
        "cyc_x_B": 10 * mean((-(b + 1) - b).abs()),              # decode_B(b + 0.5 + 0.5) = -(b + 1)
        "perc_A": mean((a + (a + 0.5)).abs()),             # perceptual(a, x_ab), x_ab = -(a + 0.5)
        "perc_B": mean((b - (b + 0.5)).abs()),             # perceptual(b, x_ba), x_ba = decode_A(b + 0.5)
    }
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # D_A judges translations into A, D_B translations into B
    assert model.D_A.seen[-1] is pass_b.translation and model.D_B.seen[-1] is pass_a.translation
    assert seen[0][0] is a and seen[0][1] is pass_a.translation and seen[1][0] is b


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
