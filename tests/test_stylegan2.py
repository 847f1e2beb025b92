"""StyleGAN2: the modulated convolution against a per-sample convolution, the resampling filter, style mixing, the
moving average's decay, a tiny model training on CPU with its lazy regularisers on their intervals, truncation in
W through gan-sample, an exact resume, and refused sizes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image

from gan_cli.assembly import load_model
from gan_cli.commands import latent_walks as walks
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build
from gan_cli.models.gans.stylegan2_layers import fir_filter, modulated_conv2d, upsample2x
from gan_cli.models.gans.stylegan2_nets import Discriminator, Generator, broadcast
from gan_cli.models.gans.stylegan2_regularizers import ema_average_fn, ema_decay, style_mix
from gan_cli.visuals import save_each
from tests.conftest import QUICK, compose_train
from tests.helpers import refusal
from tests.resume_helpers import kill_and_resume

pytestmark = pytest.mark.usefixtures("one_thread")

#: a tiny StyleGAN2 at 16 px (16 channels, 32-d z and w, 2 mapping layers)
TINY = ["model=stylegan2", "data.image_size=16", "model.preset=tiny", "model.latent_dim=32", "model.w_dim=32"]
#: regularisers due often enough to be seen in a few batches
OFTEN = ["model.r1_interval=3", "model.pl_interval=2"]
BATCHES = 6  # of 16 images
R1_BATCHES, PL_BATCHES = {0, 3}, {0, 2, 4}  # D minibatches 0, 3; G minibatches 0, 2, 4 (a G update every batch)
#: last.ckpt every 3 optimizer steps (mid-epoch) instead of at each epoch's end
MID = ["callbacks.last_checkpoint.every_n_train_steps=3", "callbacks.last_checkpoint.every_n_epochs=null"]


# --- layers and networks ---------------------------------------------------------------------------
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_convolution_is_each_samples_convolution_with_its_modulated_weight(demodulate):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(4, 5, 9, 9), torch.randn(6, 5, 3, 3), torch.randn(4, 5)
    out = modulated_conv2d(x, weight, styles, demodulate)
    for i in range(4):
        w = weight * styles[i].view(1, 5, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        torch.testing.assert_close(out[i:i + 1], F.conv2d(x[i:i + 1], w, padding=1), atol=1e-5, rtol=1e-5)
    if demodulate:  # unit-variance input, demodulated weights: unit-variance output (the paper's Eq. 3)
        assert 0.8 < float(modulated_conv2d(torch.randn(64, 5, 16, 16), weight, styles.repeat(16, 1)).std()) < 1.2


def test_the_resampling_filter_is_bilinear_inside_the_image():
    x = torch.randn(2, 3, 8, 8)
    up = upsample2x(x, fir_filter())
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == (2, 3, 16, 16)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size, num_ws", [(16, 6), (32, 8)])
def test_networks_fit_the_size_and_condition_on_labels(size, num_ws):
    g = Generator(size, 3, channel_base=128, channel_max=8, latent_dim=8, w_dim=8, num_classes=4, mapping_layers=2)
    d = Discriminator(size, 3, channel_base=128, channel_max=8, num_classes=4, mbstd_group=4, mapping_layers=2)
    g.eval()  # each layer's fixed noise: the same z and label give the same image
    z, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    images = g(z, labels)
    assert g.num_ws == num_ws and images.shape == (6, 3, size, size)
    assert d(images, labels).shape == (6,)
    assert torch.equal(g(z, labels), images) and not torch.allclose(g(z, labels.flip(0)), images)


def test_style_mixing_takes_the_second_w_from_the_crossover_on():
    torch.manual_seed(0)
    w, other = torch.randn(200, 4), torch.randn(200, 4)
    mixed = style_mix(w, other, 6, prob=1.0)
    assert mixed.shape == (200, 6, 4)
    first = (mixed == w[:, None]).all(-1)  # (N, layers): which layers took w
    second = (mixed == other[:, None]).all(-1)
    assert (first ^ second).all()
    cutoffs = second.int().argmax(1)
    assert (cutoffs >= 1).all() and set(cutoffs.tolist()) == {1, 2, 3, 4, 5}  # every crossover, never at layer 0
    layers = torch.arange(6)
    assert torch.equal(second, layers[None] >= cutoffs[:, None])  # all layers after the crossover take `other`
    assert torch.equal(style_mix(w, other, 6, prob=0.0), broadcast(w, 6))


def test_the_moving_average_halves_an_old_weight_every_half_life_and_ramps_up():
    assert ema_decay(16, 0.1) ** (100 / 16) == pytest.approx(0.5)  # 100 images: one half-life
    averages, currents = [torch.zeros(3)], [torch.ones(3)]
    ramped = ema_average_fn(16, 10.0, rampup=0.05)
    ramped(averages, currents, torch.tensor(0))  # nothing seen yet: a copy
    assert torch.equal(averages[0], torch.ones(3))
    averages = [torch.zeros(3)]
    ramped(averages, currents, torch.tensor(100_000))  # 1.6M images seen: the full half-life of 10 kimg
    torch.testing.assert_close(averages[0], torch.full((3,), 1 - ema_decay(16, 10.0)))


# --- training --------------------------------------------------------------------------------------
class Recorder(pl.Callback):
    """The path length mean after each batch."""

    def __init__(self) -> None:
        self.pl_means: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.pl_means.append(float(pl_module.pl_mean))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of 6 batches (its checkpoint, model, per-batch logged names and path length means)."""
    run = tmp_path_factory.mktemp("stylegan2") / "run"
    cfg = compose_train(run, [*QUICK, *TINY, *OFTEN, f"data.dataset.size={16 * BATCHES}", "logger=none",
                              "callbacks.sample_grid.every_n_batches=0"])
    datamodule, module, trainer = build(cfg)
    logged, log_step = [], module.log_step
    module.log_step = lambda logs, *args: (logged.append(set(logs)), log_step(logs, *args))
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_thread does for each test: a module's fixture runs before it
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        torch.set_num_threads(threads)
    return {"ckpt": run / "checkpoints" / "last.ckpt", "module": module, "trainer": trainer, "logged": logged,
            "pl_means": recorder.pl_means}


def test_a_tiny_stylegan2_trains_with_finite_losses_and_corrected_adam(trained):
    module, metrics = trained["module"], trained["trainer"].callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/D_x", "train/grad_norm_G"):
        assert math.isfinite(float(metrics[name])), name
    assert module.d_updates == BATCHES and int(module.generator_ema.n_averaged) == BATCHES
    # 6 D and 6 G steps, 2 R1 steps and 3 path length steps
    assert trained["trainer"].global_step == 2 * BATCHES + len(R1_BATCHES) + len(PL_BATCHES)
    opt_g, opt_d = trained["trainer"].optimizers
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.0025 * 2 / 3)  # c = interval / (interval + 1)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * 3 / 4)
    assert opt_g.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (2 / 3)))
    assert float(module.generator.mapping.w_avg.abs().sum()) > 0


def test_lazy_r1_and_path_length_run_on_their_intervals(trained):
    logged = trained["logged"]
    assert len(logged) == BATCHES
    assert {i for i, names in enumerate(logged) if "train/r1" in names} == R1_BATCHES
    assert {i for i, names in enumerate(logged) if "train/path_length" in names} == PL_BATCHES
    means = [0.0, *trained["pl_means"]]
    changed = {i for i in range(BATCHES) if means[i + 1] != means[i]}
    assert changed == PL_BATCHES and means[-1] > 0


def test_the_moving_average_differs_from_g_samples_and_follows_its_decay(trained):
    module = trained["module"].cpu().eval()
    average = module.generator_ema.module
    assert any(not torch.equal(a, g) for a, g in zip(average.parameters(), module.generator.parameters()))
    z = torch.randn(4, 32)
    torch.testing.assert_close(module.generate(z), average(z))
    assert not torch.allclose(module.generate(z), module.generator(z))
    torch.manual_seed(1)
    drawn = module.sample(4)
    torch.manual_seed(1)
    torch.testing.assert_close(drawn, average(torch.randn(4, 32)))
    # one more step: average + (1 - decay) (G - average), decay from the 100-image half-life at 16 a batch
    before = [p.clone() for p in average.parameters()]
    module.average_generator()
    rate = 1 - ema_decay(16, 0.1)
    for old, new, g in zip(before, average.parameters(), module.generator.parameters()):
        torch.testing.assert_close(new, old + rate * (g - old))


def draw(make_cfg, ckpt: Path, folder: Path, *settings: str) -> list[torch.Tensor]:
    cfg = make_cfg(f"ckpt_path={ckpt}", "num_samples=4", f"output={folder}/", *settings, config_name="sample")
    sample(cfg)
    return [torch.tensor(list(Image.open(p).getdata())) for p in sorted(folder.iterdir())]


def test_truncation_psi_0_draws_the_average_image_and_psi_1_the_untruncated_samples(make_cfg, tmp_path, trained):
    model, _ = load_model(trained["ckpt"])
    average = model.generator_ema.module
    with torch.no_grad():
        w_avg_image = average.synthesis(broadcast(average.mapping.w_avg[None], average.num_ws))
    z = walks.latents(model, 5, 0.0)
    assert z.abs().sum() > 0  # N(0, I): truncation happens in W
    torch.testing.assert_close(walks.generate(model, z, None, 0.0), w_avg_image.expand(5, -1, -1, -1))
    torch.testing.assert_close(walks.generate(model, z, None, 1.0), model.generate(z))
    # through gan-sample: every psi-0 image is the average image; psi 1 is no truncation at all
    save_each(w_avg_image, tmp_path / "average", [0.5], [0.5])
    expected = torch.tensor(list(Image.open(next((tmp_path / "average").iterdir())).getdata()))
    centre = draw(make_cfg, trained["ckpt"], tmp_path / "psi0", "truncation=0")
    assert len(centre) == 4 and all((image - expected).abs().max() <= 1 for image in centre)
    plain = draw(make_cfg, trained["ckpt"], tmp_path / "plain", "interpolate=null")
    psi1 = draw(make_cfg, trained["ckpt"], tmp_path / "psi1", "truncation=1")
    assert all(torch.equal(a, b) for a, b in zip(plain, psi1)) and not torch.equal(plain[0], plain[1])
    half = draw(make_cfg, trained["ckpt"], tmp_path / "half", "truncation=0.5", "interpolate=2")
    assert len(half) == 4  # walks take psi too


@pytest.mark.parametrize("checkpoints", [[], MID], ids=["epoch", "mid"])
def test_a_killed_run_resumes_exactly(tmp_path, checkpoints):
    """Killed after a random batch past the first checkpoint (at an epoch's end, or every 3 optimizer steps), and
    resumed: the moving average and its count, w_avg, the path length mean, the D-update count and the optimizers'
    moments end as an uninterrupted run's."""
    overrides = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 "trainer.deterministic=true", "seed=5", "logger=none", "callbacks.sample_grid.every_n_batches=0",
                 "data=fake", "data.dataset.size=48", "data.batch_size=16", "trainer.max_epochs=3", *TINY, *OFTEN,
                 *checkpoints]
    at, different, compared = kill_and_resume(tmp_path, overrides, 9, seed=7 + len(checkpoints))
    assert compared > 100
    assert not different, f"killed after batch {at}: {len(different)} of {compared} differ, e.g. {different[:4]}"
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(state["state_dict"]["generator_ema.n_averaged"]) == 9 and state["gan_cli"]["d_updates"] == 9
    assert float(state["state_dict"]["pl_mean"]) > 0 and "generator.mapping.w_avg" in state["state_dict"]


def test_a_conditional_stylegan2_trains_and_draws_each_label(make_cfg):
    cfg = make_cfg(*QUICK, *TINY, "model.conditional=true", "data.dataset.size=32", "logger=none", "callbacks=none")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert all(math.isfinite(float(v)) for k, v in trainer.callback_metrics.items() if "loss" in k)
    assert module.visuals()["samples"][0].shape == (80, 1, 16, 16)  # a row of 8 per label
    refused = refusal(lambda: build(make_cfg(*QUICK, *TINY, "model.conditional=true", "data.num_classes=0")))
    assert "data.num_classes=0" in str(refused)


@pytest.mark.parametrize("overrides, named", [
    (["data.image_size=48"], "16, 32, 64, 128, 256, 512, 1024"),
    (["data.image_size=2048"], "not 2048"),
    (["data.image_size=16", "model.preset=auto"], "model.preset=auto has presets for data.image_size 32, 64, 128, 256"),
    (["model.preset=huge"], "model.preset=huge is not a StyleGAN2 preset"),
    (["data.image_size=64", "model.preset=tiny", "model.channel_base=32"], "model.channel_base=64 or more"),
])
def test_bad_sizes_are_refused_with_the_valid_ones(make_cfg, overrides, named):
    error = refusal(lambda: build(make_cfg(*QUICK, "model=stylegan2", *overrides)))
    assert named in str(error)


def test_a_trick_that_rebuilds_g_after_its_average_was_copied_is_refused(make_cfg):
    cfg = make_cfg(*QUICK, *TINY, "tricks=[spectral_norm]", "tricks.spectral_norm.generator=true", "logger=none",
                   "callbacks=none")
    datamodule, module, trainer = build(cfg)
    error = refusal(lambda: trainer.fit(module, datamodule=datamodule))
    assert "tricks.spectral_norm.generator=false" in str(error)
