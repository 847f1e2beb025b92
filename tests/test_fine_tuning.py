"""init_from=CKPT (fine-tuning from another run's weights, counters not taken) and freeze_d=N (FreezeD)."""

from __future__ import annotations

import pytest
import torch

from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.fine_tuning import freeze_first_layers
from gan_cli.nets import DCGANDiscriminator
from tests.conftest import QUICK, SMALL, compose_train

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = [*QUICK, "model=dcgan", *SMALL["dcgan"], "logger=none", "data.image_size=16"]


def weights(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A finished 1-epoch DCGAN run (4 batches): its checkpoint and its model's weights."""
    folder = tmp_path_factory.mktemp("source")
    train(compose_train(folder, [*RUN, "seed=1"]))
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 8
    return folder / "checkpoints" / "last.ckpt", checkpoint["state_dict"]


def part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_init_from_takes_the_weights_but_not_the_counters(tmp_path, source_run):
    ckpt, source = source_run
    cfg = compose_train(tmp_path / "run", [*RUN, f"init_from={ckpt}", "data.dataset.size=32"])
    datamodule, model, trainer = build(cfg)
    assert same(part(source, "generator."), weights(model.generator))
    assert same(part(source, "discriminator."), weights(model.discriminator))
    trainer.fit(model, datamodule=datamodule)
    # the new run counts its own 2 batches from 0, with fresh optimizers
    assert trainer.global_step == 4 and model.d_updates == 2
    assert int(trainer.optimizers[0].state_dict()["state"][0]["step"]) == 2
    assert not same(part(source, "generator."), weights(model.generator))


def test_freeze_d_keeps_the_first_layers_and_trains_the_rest(tmp_path, source_run):
    ckpt, source = source_run
    cfg = compose_train(tmp_path / "run", [*RUN, f"init_from={ckpt}", "freeze_d=2"])
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    before, after = part(source, "discriminator."), weights(model.discriminator)
    # DCGAN's D at 16 px: conv (features.0), conv (features.2), batch norm (features.3), the score conv (head)
    kept = ["features.0.weight", "features.2.weight", "features.3.weight", "features.3.bias"]
    assert all(torch.equal(before[k], after[k]) for k in kept)
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert not same(part(source, "generator."), weights(model.generator))


def test_freeze_first_layers_counts_spectrally_normalised_layers_once():
    from gan_cli.nets.spectral import apply_spectral_norm

    network = apply_spectral_norm(DCGANDiscriminator(channels=1, image_size=16, ndf=4))
    frozen = freeze_first_layers(network, 2)
    assert frozen == ["features.0", "features.2", "features.3"]
    assert not network.features[2].parametrizations.weight.original.requires_grad
    assert network.head.parametrizations.weight.original.requires_grad
    with pytest.raises(UserError, match="only 3 convolution/linear layers"):
        freeze_first_layers(network, 4)


def test_an_exported_folder_gives_the_generator_and_the_discriminator_starts_fresh(tmp_path, source_run):
    from gan_cli.commands.export import export

    ckpt, source = source_run
    export(compose_train(tmp_path / "unused", [f"ckpt_path={ckpt}", f"output={tmp_path / 'export'}"],
                         config_name="export"))
    cfg = compose_train(tmp_path / "run", [*RUN, f"init_from={tmp_path / 'export'}"])
    _, model, _ = build(cfg)
    assert same(part(source, "generator."), weights(model.generator))
    assert not same(part(source, "discriminator."), weights(model.discriminator))


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.generator.ngf=8"], "differ in shape"),
    (["freeze_d=1", "init_from=null"], "needs init_from"),
    (["freeze_d=9"], "only 3 convolution/linear layers"),
    (["freeze_d=-1"], "0 or more"),
])
def test_bad_settings_are_refused_with_what_to_do(tmp_path, source_run, overrides, message):
    ckpt, _ = source_run
    cfg = compose_train(tmp_path / "run", [*RUN, f"init_from={ckpt}", *overrides])
    with pytest.raises(UserError, match=message):
        build(cfg)


def test_another_models_checkpoint_is_refused(tmp_path, source_run):
    ckpt, _ = source_run
    cfg = compose_train(tmp_path / "run", [*QUICK, "model=vae", f"init_from={ckpt}"])
    with pytest.raises(UserError, match="holds another model"):
        build(cfg)
    cfg = compose_train(tmp_path / "run", [*QUICK, "model=vae", f"init_from={ckpt}", "freeze_d=1"])
    with pytest.raises(UserError, match="has none"):
        build(cfg)
