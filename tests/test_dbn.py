"""model=dbn: greedy layer-wise pre-training, the unrolled classifier, its random-initialisation baseline, and
gan-eval's accuracy next to random_init_accuracy, through the runner on tiny synthetic data."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_cli.assembly import load_model
from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.sample import sample
from gan_cli.commands.train import build, train
from gan_cli.errors import UserError
from gan_cli.models.classic.dbn import DBN
from tests.conftest import QUICK, compose_train

#: two stacked RBMs (64 -> 12 -> 8) on 8x8 synthetic images, one epoch each, then one epoch of fine-tuning
TINY = [*QUICK, "model=dbn", "data.image_size=8", "model.layers=[12,8]", "model.pretrain_epochs=1",
        "model.finetune_epochs=1", "trainer.max_epochs=3", "logger=none", "model.finetune_lr=0.5"]


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder(pl.Callback):
    """The weights of every part of the DBN before training and at the end of each epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, dict]] = []

    def record(self, module: DBN) -> None:
        self.states.append({"rbm1": weights(module.rbms[0]), "rbm2": weights(module.rbms[1]),
                            "classifier": weights(module.classifier), "baseline": weights(module.baseline)})

    def on_train_start(self, trainer, pl_module) -> None:
        self.record(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.record(pl_module)


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory):
    """The tiny DBN trained through the runner's objects, with its weights recorded and what RBM 2 trained on."""
    run = tmp_path_factory.mktemp("dbn")
    cfg = compose_train(run, TINY)
    datamodule, model, trainer = build(cfg)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (epoch, pixels of the batch, RBM 2's data)
    visible, cd_step = model.coding.visible, model.rbms[1].cd_step

    def record_visible(images, draw):
        units = visible(images, draw)
        seen.append((model.current_epoch, units, None))
        return units

    def record_data(v, k, reconstruction, hidden=None):
        epoch, units, _ = seen[-1]
        seen[-1] = (epoch, units, v.clone())
        return cd_step(v, k, reconstruction, hidden)

    model.coding.visible, model.rbms[1].cd_step = record_visible, record_data
    trainer.fit(model, datamodule=datamodule)
    model.coding.visible, model.rbms[1].cd_step = visible, cd_step
    return run, model, recorder.states, seen, dict(trainer.callback_metrics)


def test_layers_train_greedily_one_after_the_other(greedy_run):
    _, model, states, _, _ = greedy_run
    start, epoch0, epoch1, epoch2 = states
    # epoch 0: RBM 1 alone
    assert not same(epoch0["rbm1"], start["rbm1"])
    assert same(epoch0["rbm2"], start["rbm2"]) and same(epoch0["classifier"], start["classifier"])
    assert same(epoch0["baseline"], start["baseline"])
    # epoch 1: RBM 2 alone; RBM 1's weights stay fixed
    assert same(epoch1["rbm1"], epoch0["rbm1"]) and not same(epoch1["rbm2"], epoch0["rbm2"])
    assert same(epoch1["classifier"], start["classifier"]) and same(epoch1["baseline"], start["baseline"])
    # epoch 2: fine-tuning moves both classifiers, never the RBMs
    assert same(epoch2["rbm1"], epoch1["rbm1"]) and same(epoch2["rbm2"], epoch1["rbm2"])
    assert not same(epoch2["classifier"], start["classifier"]) and not same(epoch2["baseline"], start["baseline"])
    assert bool(model.unrolled)


def test_the_second_rbm_trains_on_the_hidden_probabilities_of_the_first(greedy_run):
    _, model, _, seen, _ = greedy_run
    layer2 = [(units, start) for epoch, units, start in seen if epoch == 1 and start is not None]
    assert len(layer2) == 4  # 64 images in batches of 16
    for units, start in layer2:  # RBM 1 is fixed during epoch 1: its final weights are the ones used
        assert torch.allclose(start, model.rbms[0].hidden_probs(units), atol=1e-6)
    assert not any(start is not None for epoch, _, start in seen if epoch != 1)


def test_unrolling_copies_the_rbms_into_the_feed_forward_net():
    torch.manual_seed(0)
    model = DBN(1, 8, 10, [0.5], [0.5], optimizer=torch.optim.SGD, layers=[12, 8], init_visible_bias=False)
    images = torch.rand(5, 1, 8, 8) * 2 - 1
    assert not torch.allclose(model.features(images), model.represent(model.coding.unit(images), 2))
    model.unroll()
    assert torch.allclose(model.features(images), model.represent(model.coding.unit(images), 2), atol=1e-6)
    assert model(images).shape == (5, 10) and model.features(images).shape == (5, 8) and model.feature_dim == 8


def test_fine_tuning_logs_both_accuracies_and_the_run_stops_with_its_schedule(greedy_run):
    _, _, states, _, metrics = greedy_run
    assert {"val/accuracy", "val/random_init_accuracy", "train/loss", "train/random_init_loss",
            "train/layer1_recon_error"} <= metrics.keys()
    assert 0 <= float(metrics["val/accuracy"]) <= 1 and len(states) == 4  # three epochs (max_epochs=3)


def test_gan_eval_reports_accuracy_next_to_random_init_accuracy(greedy_run, tmp_path):
    run, _, _, _, _ = greedy_run
    ckpt = run / "checkpoints" / "last.ckpt"
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}"], config_name="eval"))
    assert record["protocol"]["model_kind"] == "classifier"
    scores = {name: score["mean"] for name, score in record["scores"].items()}
    model, config = load_model(ckpt)
    test = instantiate(config["data"]).build("test")
    images, labels = test.images, test.labels
    with torch.no_grad():
        nets = {"accuracy": model, "random_init_accuracy": lambda x: model.baseline(model.coding.unit(x))}
        for name, net in nets.items():
            predicted = net(images).argmax(1)
            per_class = [float((predicted[labels == c] == c).float().mean()) for c in labels.unique()]
            assert scores[name] == pytest.approx(sum(per_class) / len(per_class), abs=1e-6), name


def test_gan_sample_on_a_dbn_says_what_to_do_instead(greedy_run):
    run, _, _, _, _ = greedy_run
    with pytest.raises(UserError, match="fine-tuned into a classifier.*train model=rbm"):
        sample(OmegaConf.create({"ckpt_path": str(run / "checkpoints" / "last.ckpt"), "seed": 0, "device": "cpu",
                                 "num_samples": 4, "output": "x.png", "label": None, "nrow": None}))


def test_a_short_max_epochs_is_warned_about_and_a_long_one_stops_at_the_schedule(make_cfg, caplog, one_thread):
    with caplog.at_level(logging.WARNING, logger="gan_cli.models.classic.dbn"):
        cfg = make_cfg(*TINY, "trainer.max_epochs=1", "callbacks=none", "trainer.limit_val_batches=0",
                       "trainer.enable_checkpointing=false")
        datamodule, model, trainer = build(cfg)
        trainer.fit(model, datamodule=datamodule)
    assert "trainer.max_epochs=1 cuts it short. Set trainer.max_epochs=3" in caplog.text and not model.unrolled
    datamodule, model, trainer = build(make_cfg(*TINY, "trainer.max_epochs=9", "callbacks=none",
                                                "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
                                                "trainer.enable_checkpointing=false"))
    trainer.fit(model, datamodule=datamodule)
    assert trainer.current_epoch == 3 and model.unrolled  # epochs 0, 1, 2 ran


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_a_run_resumed_at_the_unrolling_ends_like_an_uninterrupted_one(tmp_path, one_thread):
    common = [*TINY, "callbacks=[rng_state,checkpoints]", "trainer.limit_val_batches=0", "model.k=2"]
    train(compose_train(tmp_path / "whole", common))
    train(compose_train(tmp_path / "cut", [*common, "trainer.max_epochs=2"]))  # pre-training done, not unrolled
    cut = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert not bool(torch.load(cut, weights_only=True)["state_dict"]["unrolled"])
    train(compose_train(tmp_path / "resumed", [*common, f"ckpt_path={cut}"]))
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert whole["epoch"] == resumed["epoch"] == 2 and bool(resumed["state_dict"]["unrolled"])
    assert all(torch.equal(whole["state_dict"][k], resumed["state_dict"][k]) for k in whole["state_dict"])


@pytest.mark.parametrize("override, message", [
    ("model.layers=[]", r"model\.layers=\[\]: give the hidden units of each stacked RBM"),
    ("model.layers=[12,0]", r"model\.layers=\[12, 0\]"),
    ("model.pretrain_epochs=0", r"model\.pretrain_epochs=0"),
    ("model.k=0", r"model\.k=0"),
    ("data.num_classes=0", r"fine-tuned as a classifier and this data has data\.num_classes=0"),
    ("model.finetune_lr=0", r"model\.finetune_lr=0"),
])
def test_bad_settings_name_the_setting_and_the_fix(make_cfg, override, message):
    with pytest.raises(InstantiationException, match=message) as error:
        build(make_cfg(*TINY, override))
    assert isinstance(error.value.__cause__, UserError)
