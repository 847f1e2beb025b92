"""engine.capture_step (gan_cli.models.step_capture): a step's whole update captured in a CUDA graph and replayed.

On a CPU: who may capture and who is refused with the reason, and the host bookkeeping a replay relies on. On a GPU
(skipped elsewhere): replayed training ends with the weights and counters of eager training, makes no host-device
sync, and resumes exactly after a kill."""

from __future__ import annotations

import pytest
import torch

from gan_cli.callbacks.engine import Engine, capture_refusal
from gan_cli.commands.train import build
from gan_cli.lightning_state import count_optimizer_steps
from tests.conftest import QUICK, SMALL, translation_quick
from tests.helpers import refusal
from tests.test_engine import SyncIsAnError, quick

pytestmark = pytest.mark.usefixtures("one_thread")
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")
DCGAN = [*QUICK, *SMALL["dcgan"], "data.image_size=16", "data.dataset.size=32"]

#: the models whose update engine.capture_step captures, with a quick run of each
CAPTURED = ("dcgan", "dcgan-wgan_gp-k2", "cgan", "gan", "sngan", "infogan", "ssgan", "lapgan", "text_cgan", "stackgan",
            "pix2pix", "cyclegan")
STACKGAN = ["model=stackgan", "model.stage1_generator.ngf=4", "model.stage1_generator.latent_dim=8",
            "model.stage1_generator.condition_dim=8", "model.stage1_discriminator.ndf=4",
            "model.stage1_discriminator.condition_dim=8", "model.stage2_generator.ngf=4",
            "model.stage2_generator.condition_dim=8", "model.stage2_generator.residual_blocks=1",
            "model.stage2_discriminator.ndf=4", "model.stage2_discriminator.condition_dim=8", "model.stage=both",
            "model.stage1_epochs=1", "data=mnist_5k_captions", "text_encoder=hashing", "data.batch_size=8",
            "trainer.limit_train_batches=3", *(o for o in QUICK if not o.startswith("data"))]


def captured_run(model: str, image_pairs) -> list[str]:
    if model == "dcgan-wgan_gp-k2":
        return [*DCGAN, "loss=wgan_gp", "loss.d_steps=2"]
    if model == "stackgan":  # both stages: Stage-I in the first epoch, Stage-II in the second
        return STACKGAN
    if model == "cyclegan":  # pools that fill in 2 steps: the rest of the run draws from full pools
        return [*quick(model, image_pairs, None), "model.pool_size=2"]
    return quick(model, image_pairs, None)


def built(make_cfg, *overrides: str):
    return build(make_cfg(*overrides))


def test_capturing_off_a_gpu_is_refused_with_the_reason(make_cfg):
    datamodule, module, trainer = built(make_cfg, *DCGAN, "engine.capture_step=true")
    error = refusal(lambda: trainer.fit(module, datamodule=datamodule))
    assert "model=dcgan cannot be trained with engine.capture_step: CUDA graphs need a CUDA GPU" in str(error)
    assert "engine.capture_step=false" in str(error) and "engine.capture_step=gpu" in str(error)


def test_capture_on_a_gpu_only_leaves_a_cpu_run_eager(make_cfg):
    datamodule, module, trainer = built(make_cfg, *DCGAN, "engine.capture_step=gpu")
    trainer.fit(module, datamodule=datamodule)
    assert module.step_capture is None and trainer.global_step == 2 * module.d_updates == 2 * 2  # D and G, 2 batches
    assert not next(c for c in trainer.callbacks if isinstance(c, Engine)).captured


def test_a_bad_capture_choice_is_named(make_cfg):
    error = refusal(lambda: build(make_cfg(*QUICK, "engine.capture_step=sometimes")))
    assert "engine.capture_step=sometimes" in str(error) and "gpu" in str(error)


@pytest.mark.parametrize("model, reason", [
    ("dcgan+tricks", "tricks=['ema', 'ada', 'r1', 'spectral_norm', 'diffaugment', 'label_smoothing'] keep state on the "
                     "host between steps"),
    ("stylegan2", "does not run its update through run_update"),
    ("vae", "does not run its update through run_update"),
])
def test_a_model_that_cannot_be_captured_is_named_with_its_reason(make_cfg, model, reason):
    _, module, trainer = built(make_cfg, *quick(model, None, None))
    assert reason in capture_refusal(module, torch.device("cuda"), trainer)  # as a GPU run would find it


@pytest.mark.parametrize("precision, world_size, reason", [
    ("16-mixed", 1, "fp16's gradient scaler decides on the host whether each step is skipped"),
    ("bf16-mixed", 2, "the gradient all-reduce across several GPUs is not captured"),
])
def test_fp16_and_several_gpus_are_refused_with_the_reason(make_cfg, precision, world_size, reason):
    from types import SimpleNamespace

    _, module, _ = built(make_cfg, *DCGAN)
    trainer = SimpleNamespace(precision=precision, world_size=world_size)  # what a GPU run's trainer says
    assert capture_refusal(module, torch.device("cuda"), trainer).startswith(reason)


def test_the_adversarial_models_can_be_captured_and_key_their_graphs_on_the_coming_updates(make_cfg, image_pairs):
    _, gan, _ = built(make_cfg, *QUICK, *SMALL["dcgan"], "loss.d_steps=2")
    for model in CAPTURED:
        assert built(make_cfg, *captured_run(model, image_pairs))[1].capture_refusal() == "", model
    keys = []
    for _ in range(4):
        keys.append(gan.capture_key())
        gan.d_updates += 1
    assert keys == [(False,), (True,), (False,), (True,)]  # D alone, then D and G: two graphs
    assert gan.captured_counters == ("d_updates",)
    _, cyclegan, _ = built(make_cfg, *captured_run("cyclegan", image_pairs))
    keys = []
    for _ in range(4):  # batches of 1: the pools of 2 fill in two steps, then every step has the same graph
        keys.append(cyclegan.capture_key())
        for pool in cyclegan.image_pools().values():
            pool.query(torch.zeros(1, 3, 4, 4))
    assert keys == [(True, 0, 0), (True, 1, 1), (True, 2, 2), (True, 2, 2)]


def test_counted_optimizer_steps_are_lightnings_global_step(make_cfg):
    datamodule, module, trainer = built(make_cfg, *DCGAN)
    trainer.fit(module, datamodule=datamodule)
    before = trainer.global_step
    count_optimizer_steps(trainer, 3)  # what a replayed D+G+D update would add
    assert trainer.global_step == before + 3


def test_a_non_finite_loss_is_recorded_in_place_at_its_first_step(make_cfg):
    """The first non-finite step is kept in one device tensor updated in place: a replayed graph updates it too."""
    _, module, _ = built(make_cfg, *DCGAN)
    module.track_finite("d_loss", torch.tensor(1.0))
    first = module._first_bad_step["d_loss"]
    for loss in (float("nan"), 2.0, float("inf")):
        module.track_finite("d_loss", torch.tensor(loss))
    assert module._first_bad_step["d_loss"] is first and int(first) == 0  # batches_seen is 0 without a trainer


def host_scalars(module: torch.nn.Module) -> dict[str, object]:
    """The public Python scalars of a model and of every sub-module (its loss, its networks)."""
    return {f"{name}.{key}": value for name, sub in module.named_modules() for key, value in vars(sub).items()
            if isinstance(value, (bool, int, float, str)) and not key.startswith("_")}


@pytest.mark.parametrize("model", CAPTURED)
def test_what_a_capture_records_reads_nothing_on_the_host_and_changes_only_the_counted_state(
        make_cfg, image_pairs, monkeypatch, model):
    """What engine.capture_step needs of an update, checked on the CPU: run as a capture runs it (with the log
    step's values), it reads no device value on the host (tests/sync_detector.py), and the only host state it
    changes is the model's `captured_counters` (a replay advances them; anything else would be skipped)."""
    from gan_cli.models.base import GenerativeModule
    from tests.sync_detector import host_reads_beside

    checked = []

    def as_captured(self, update, *inputs):
        before, self.logs_this_step = host_scalars(self), True
        with host_reads_beside(self.trainer.optimizers) as reads:  # (a capture uses capturable optimizers)
            logs = update(*inputs)
        changed = {key for key, value in host_scalars(self).items() if before.get(key) != value}
        checked.append((reads.found, changed - {"logs_this_step"}))
        return logs

    monkeypatch.setattr(GenerativeModule, "run_update", as_captured)
    datamodule, module, trainer = build(make_cfg(*captured_run(model, image_pairs), "trainer.max_epochs=2"))
    trainer.fit(module, datamodule=datamodule)
    assert len(checked) >= 4
    for found, changed in checked:
        assert not found, found[0][1]
        assert changed <= {f".{name}" for name in module.captured_counters}, changed


# --- on a GPU ---------------------------------------------------------------------------------------
def trained(make_cfg, *overrides: str):
    datamodule, module, trainer = build(make_cfg(*overrides, "trainer=gpu", "trainer.deterministic=true"))
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


#: 20 batches of 16 for the GANs; StackGAN through both stages (a graph per stage); pix2pix and CycleGAN (its pools
#: full after 2 batches) for 12 batches of 1
ON_GPU = {
    "dcgan": [*QUICK, *SMALL["dcgan"], "data.dataset.size=320", "data.image_size=16", "seed=3"],
    "dcgan-wgan_gp-k2": [*QUICK, *SMALL["dcgan"], "data.dataset.size=320", "data.image_size=16", "seed=3",
                         "loss.d_steps=2", "loss=wgan_gp"],
    "cgan": [*QUICK, *SMALL["cgan"], "data.dataset.size=320", "seed=3", "model=cgan"],
    "stackgan": [*STACKGAN, "trainer.max_epochs=2"],
    "pix2pix": ["trainer.max_epochs=3"],
    "cyclegan": ["trainer.max_epochs=3", "model.pool_size=2"],
}


@GPU
@pytest.mark.parametrize("model", ON_GPU)
def test_on_a_gpu_replayed_fp32_training_ends_with_the_weights_and_counters_of_eager_training(
        make_cfg, image_pairs, model):
    translation = model in ("pix2pix", "cyclegan")
    run = [*translation_quick(model, image_pairs), *ON_GPU[model]] if translation else ON_GPU[model]
    eager, eager_trainer = trained(make_cfg, *run)
    replayed, replayed_trainer = trained(make_cfg, *run, "engine.capture_step=true")
    assert replayed.step_capture is not None and replayed.step_capture.graphs  # it did replay
    assert replayed_trainer.global_step == eager_trainer.global_step and replayed.d_updates == eager.d_updates
    weights = eager.state_dict()
    for name, weight in replayed.state_dict().items():
        if weight.is_floating_point() and weights[name].norm() > 0:
            assert (weight - weights[name]).norm() / weights[name].norm() < 1e-5, name


@GPU
def test_on_a_gpu_capture_where_possible_leaves_a_refused_model_its_compiled_networks(make_cfg):
    datamodule, module, trainer = build(make_cfg(*quick("stylegan2", None, None), "trainer=gpu", "engine=fast",
                                                 "engine.capture_step=gpu"))
    trainer.fit(module, datamodule=datamodule)
    engine = next(c for c in trainer.callbacks if isinstance(c, Engine))
    assert not engine.captured and engine.compiled and module.step_capture is None and trainer.global_step > 0


@GPU
def test_on_a_gpu_a_replayed_step_never_synchronises(make_cfg):
    from tests.test_engine import SPARSE_LOGS

    datamodule, module, trainer = build(make_cfg(*DCGAN, *SPARSE_LOGS, "engine.capture_step=true", "trainer=gpu",
                                                 "trainer.max_epochs=3"))
    check = SyncIsAnError()
    trainer.callbacks.insert(len(trainer.callbacks) - 2, check.callback)
    trainer.fit(module, datamodule=datamodule)  # a synchronising call raises inside the step
    assert check.callback.checked >= 4 and module.step_capture.graphs


@GPU
def test_on_a_gpu_a_replayed_run_killed_mid_epoch_resumes_exactly(tmp_path):
    from tests.resume_helpers import kill_and_resume

    overrides = [*SMALL["dcgan"], "data=fake", "data.dataset.size=48", "data.batch_size=8", "data.image_size=16",
                 "trainer=gpu", "trainer.deterministic=true", "engine.capture_step=true", "trainer.max_epochs=3",
                 "callbacks.last_checkpoint.every_n_train_steps=3", "callbacks.last_checkpoint.every_n_epochs=null",
                 "logger=csv"]
    at, different, compared = kill_and_resume(tmp_path, overrides, 18, seed=5)
    assert compared > 20 and not different, f"killed after batch {at}: {different}"
