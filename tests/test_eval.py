"""Metrics during training (the QualityMetrics callback) and gan-eval on checkpoints of each model family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gan_cli.commands.evaluate import evaluate, report
from gan_cli.commands.train import train
from gan_cli.errors import UserError
from tests.conftest import POOLED, QUICK, SMALL, compose_train, run_cli, translation_quick

#: and the label accuracy of a conditional model judged by a stand-in classifier of grey levels
JUDGED = ["+metrics.classifier._target_=gan_cli.metrics.features.CustomFeatures",
          "+metrics.classifier.network._target_=tests.helpers.IntensityClassifier",
          "+metrics.classifier.classifies=true", "metrics.samples_per_label=3"]
TINY = [*QUICK, "logger=none", "trainer.max_epochs=2"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, image_pairs) -> dict[str, tuple[Path, dict]]:
    """Tiny runs of each family with metrics on: {name: (checkpoint, metrics returned by train)}."""
    overrides = {
        "cgan": [*TINY, *SMALL["cgan"], "model=cgan", *POOLED, *JUDGED],
        "pix2pix": [*translation_quick("pix2pix", image_pairs), "logger=none", *POOLED],
        "cyclegan": [*translation_quick("cyclegan", image_pairs), "logger=none", *POOLED],
    }
    runs = {}
    for name, args in overrides.items():
        folder = tmp_path_factory.mktemp(name)
        logged = train(compose_train(folder, args))
        runs[name] = (folder / "checkpoints" / "last.ckpt", logged)
    return runs


def eval_cfg(tmp_path: Path, *overrides: str):
    return compose_train(tmp_path, list(overrides), config_name="eval")


# --- during training -------------------------------------------------------------------------------
def test_metrics_are_logged_and_recorded_every_epoch(runs):
    ckpt, logged = runs["cgan"]
    assert {"metrics/fid", "metrics/kid_mean", "metrics/label_accuracy", "metrics/label_accuracy_9"} <= logged.keys()
    records = json.loads((ckpt.parent / "metrics.json").read_text())
    assert [r["epoch"] for r in records] == [0, 1]
    assert records[-1]["scores"]["fid"] == pytest.approx(logged["metrics/fid"])
    protocol = records[-1]["protocol"]
    assert protocol["feature_network"]["name"] == "torch.nn.modules.pooling.AdaptiveAvgPool2d"
    assert protocol["num_samples"] == 32 and protocol["reference"] == {"split": "test", "size": 64, "cached": False}
    assert protocol["label_accuracy"]["samples_per_label"] == 3


def test_evaluating_during_training_leaves_the_training_unchanged(tmp_path):
    weights = []
    for name, extra in (("plain", []), ("measured", POOLED)):
        train(compose_train(tmp_path / name, [*TINY, *SMALL["dcgan"], *extra]))
        weights.append(torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_n_epochs_and_the_last_epoch(tmp_path):
    train(compose_train(tmp_path, [*QUICK, "logger=none", "trainer.max_epochs=3", *SMALL["dcgan"], *POOLED,
                                   "metrics.every_n_epochs=2"]))
    records = json.loads((tmp_path / "checkpoints" / "metrics.json").read_text())
    assert [r["epoch"] for r in records] == [1, 2]  # epoch 2 (the third) is the last


# --- gan-eval --------------------------------------------------------------------------------------
def test_gan_eval_command_on_a_conditional_gan_with_seeds(runs, tmp_path):
    ckpt, _ = runs["cgan"]
    result = run_cli([f"ckpt_path={ckpt}", "seeds=[0,1]"], tmp_path, module="gan-eval",
                     env={"PYTHONPATH": str(ROOT)})  # the run's stand-in classifier lives in tests/
    assert result.returncode == 0, result.stderr[-3000:]
    assert "label_accuracy" in result.stdout and "±" in result.stdout
    record = json.loads(ckpt.with_name("last.eval.json").read_text())[-1]
    assert record["seeds"] == [0, 1]
    assert len(record["scores"]["fid"]["values"]) == 2 and record["scores"]["fid"]["std"] is not None
    assert record["checkpoint"]["model"] == "gan_cli.models.gans.gan.GAN" and len(record["checkpoint"]["sha256"]) == 64
    protocol = record["protocol"]
    assert protocol["num_samples"] == 32  # the run's own metrics settings
    assert {"feature_network", "reference", "image_size", "versions", "kid"} <= protocol.keys()


def test_gan_eval_overrides_on_top_of_the_run_settings(runs, tmp_path):
    ckpt, _ = runs["cgan"]
    output = tmp_path / "scores.json"
    record, written = evaluate(eval_cfg(tmp_path, f"ckpt_path={ckpt}", "num_samples=16", "metrics.kid_subset_size=4",
                                        f"output={output}"))
    assert written == output and json.loads(output.read_text())[-1] == json.loads(json.dumps(record))
    assert record["protocol"]["num_samples"] == 16 and record["protocol"]["kid"]["subset_size"] == 4
    text = report(record, written)
    assert "fid " in text and str(output) in text


def test_gan_eval_on_pix2pix_scores_against_the_paired_truth(runs, tmp_path):
    ckpt, logged = runs["pix2pix"]
    assert "metrics/AtoB/psnr" in logged
    record, _ = evaluate(eval_cfg(tmp_path, f"ckpt_path={ckpt}"))
    scores = record["scores"]
    assert {"AtoB/fid", "AtoB/kid_mean", "AtoB/l1", "AtoB/psnr", "AtoB/ssim"} <= scores.keys()
    assert 0 < scores["AtoB/l1"]["mean"] < 1 and scores["AtoB/psnr"]["mean"] > 0
    assert record["protocol"]["reference"]["paired"] is True
    assert record["protocol"]["inference"] == "paper"


def test_gan_eval_on_cyclegan_scores_both_directions_without_paired_truth(runs, tmp_path):
    ckpt, _ = runs["cyclegan"]
    record, _ = evaluate(eval_cfg(tmp_path, f"ckpt_path={ckpt}"))
    scores = record["scores"]
    assert {"AtoB/fid", "BtoA/fid"} <= scores.keys()
    assert not any(name.endswith(("l1", "psnr", "ssim")) for name in scores)
    assert record["protocol"]["reference"]["size"] == {"AtoB": 6, "BtoA": 6}  # distinct test images per domain


def test_gan_eval_needs_the_classifier_for_digits_metrics(runs, tmp_path):
    ckpt, _ = runs["cgan"]
    with pytest.raises(UserError, match="metrics.classifier_ckpt is not set"):
        evaluate(eval_cfg(tmp_path, f"ckpt_path={ckpt}", "metrics=digits"))


def test_gan_eval_on_a_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="No checkpoint"):
        evaluate(eval_cfg(tmp_path, f"ckpt_path={tmp_path / 'none.ckpt'}"))


# --- the offline digit classifier as the evaluator -------------------------------------------------
def test_gan_eval_on_the_classifier_reports_its_held_out_accuracy(digit_classifier, tmp_path):
    run, logged = digit_classifier
    record, _ = evaluate(eval_cfg(tmp_path, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))
    assert record["scores"]["accuracy"]["mean"] == pytest.approx(logged["val/accuracy"], abs=1e-6)
    assert record["protocol"]["model_kind"] == "classifier" and "accuracy_9" in record["scores"]


def test_the_classifier_judges_real_digits_by_their_labels(digit_classifier):
    from hydra.utils import instantiate

    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator
    from gan_cli.metrics.features import ClassifierFeatures
    from tests.helpers import RealDigits

    ckpt = digit_classifier[0] / "checkpoints" / "last.ckpt"
    datamodule = instantiate(load_model(ckpt)[1]["data"])
    test = datamodule.build("test")
    images, labels = test.images, test.labels  # the 500 held-out digits, normalised like the training data
    judge = ClassifierFeatures(str(ckpt))
    evaluator = Evaluator(judge, classifier=judge, scores=["fid", "kid"], num_samples=500, samples_per_label=30)
    faithful = evaluator.evaluate(RealDigits(images, labels), datamodule)
    shifted = evaluator.evaluate(RealDigits(images, labels, shift=1), datamodule)
    noise = evaluator.evaluate(RealDigits(torch.rand_like(images) * 2 - 1, labels), datamodule)
    assert faithful["label_accuracy"] >= 0.9  # real digits of the asked-for label are recognised
    assert shifted["label_accuracy"] <= 0.1   # digits of the next label are not
    assert faithful["fid"] < 0.2 * noise["fid"]  # in the classifier's feature space, real digits sit close
    protocol = evaluator.last_protocol
    assert protocol["feature_network"]["checkpoint"] == str(ckpt.resolve())
    assert protocol["label_accuracy"]["classifier"]["weights_sha256"] == protocol["feature_network"]["weights_sha256"]


def test_gan_eval_with_inception_from_a_local_weights_file(runs, inception_file, tmp_path):
    ckpt, _ = runs["cgan"]
    record, _ = evaluate(eval_cfg(tmp_path, f"ckpt_path={ckpt}", "metrics=inception",
                                  f"metrics.weights_path={inception_file}", "num_samples=6",
                                  "metrics.reference_size=6", "metrics.batch_size=6"))
    assert {"fid", "kid_mean", "is_mean", "is_std"} <= record["scores"].keys()  # IS: Inception has logits
    network = record["protocol"]["feature_network"]
    assert network["weights"] == str(inception_file) and len(network["weights_sha256"]) == 64
    assert record["protocol"]["reference"]["size"] == 6 and record["protocol"]["num_samples"] == 6
