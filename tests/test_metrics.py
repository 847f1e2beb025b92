"""The metrics' plumbing: feature networks, the torchmetrics scores fed with precomputed features, the
evaluator's generator path, seeds, and the JSON protocol record."""

from __future__ import annotations

import functools
import http.server
import importlib.metadata
import json
import threading

import pytest
import torch
from hydra.utils import instantiate
from torchmetrics.image.fid import FrechetInceptionDistance

from gan_cli.errors import UserError
from gan_cli.evaluation import Evaluator
from gan_cli.metrics.features import CustomFeatures, InceptionV3, inception_weights, weights_sha256
from gan_cli.metrics.record import append_record, new_record, summarize
from gan_cli.metrics.scores import DistributionScores, PairedScores
from tests.conftest import QUICK, compose_train
from tests.helpers import ConstantImages, IntensityClassifier


@pytest.fixture
def digits_datamodule(tmp_path):
    cfg = compose_train(tmp_path, [*QUICK, "data.image_size=8", "data.dataset.size=40"])
    return instantiate(cfg.data)


# --- InceptionV3 -----------------------------------------------------------------------------------
def test_inception_distances_are_zero_for_identical_sets_and_grow_for_different_ones(inception_file):
    net = InceptionV3(weights_path=str(inception_file))
    torch.manual_seed(1)
    a, b = torch.rand(6, 1, 16, 16), torch.rand(6, 1, 16, 16) * 0.3  # grey images: repeated to RGB
    (feat_a, logits_a), (feat_b, logits_b) = net(a), net(b)
    assert feat_a.shape == (6, 2048) and logits_a.shape == (6, 1008)

    scores = DistributionScores(["fid", "kid", "is"], is_splits=2)
    scores.update(feat_a, logits_a, real=True)
    scores.update(feat_a, logits_a, real=False)
    same = scores.compute(kid_subset_size=6)
    scores.reset()  # the real statistics stay
    scores.update(feat_b, logits_b, real=False)
    different = scores.compute(kid_subset_size=6)
    assert abs(same["fid"]) < 1e-3 and abs(same["kid_mean"]) < 1e-3
    assert different["fid"] > 1.0 and different["kid_mean"] > 10 * abs(same["kid_mean"])
    assert different["is_mean"] >= 1.0

    described = net.describe()
    assert described["weights"] == str(inception_file)
    assert described["weights_sha256"] == weights_sha256(net.net) and "TensorFlow 1" in described["resize"]


def test_inception_weights_path_that_is_not_a_file(tmp_path):
    with pytest.raises(UserError, match="metrics.weights_path=.*is not a file"):
        inception_weights(str(tmp_path / "nothing.pth"))


def test_without_weights_or_network_the_message_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = "http://127.0.0.1:9/weights-inception-2015-12-05-6726825d.pth"  # port 9: nothing listens
    with pytest.raises(UserError) as error:
        inception_weights(None, url=url)
    text = str(error.value)
    assert url in text and "metrics.weights_path=" in text
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in text
    assert not list((tmp_path / "torch").rglob("*.pth"))  # nothing half-written


def test_weights_are_downloaded_once_into_the_cache(tmp_path, monkeypatch):
    import hashlib

    served = tmp_path / "served"
    served.mkdir()
    content = b"pretend weights" * 100
    name = f"weights-test-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    (served / name).write_bytes(content)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
    try:
        first = inception_weights(None, url=url)
    finally:
        server.shutdown()
    assert first.read_bytes() == content and first.parent == tmp_path / "torch" / "hub" / "checkpoints"
    assert inception_weights(None, url=url) == first  # the server is gone: the cache serves


def test_a_download_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights-test-00000000.pth").write_bytes(b"tampered")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    try:
        with pytest.raises(UserError, match="could not be downloaded"):
            inception_weights(None, url=f"http://127.0.0.1:{server.server_address[1]}/weights-test-00000000.pth")
    finally:
        server.shutdown()
    assert not list((tmp_path / "torch").rglob("*.pth"))


# --- scores ----------------------------------------------------------------------------------------
def test_precomputed_features_give_torchmetrics_own_fid():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5))
    net.num_features = 5  # spares torchmetrics its probe with a uint8 image
    real, fake = torch.rand(20, 3, 4, 4), torch.rand(20, 3, 4, 4) ** 2
    direct = FrechetInceptionDistance(feature=net)
    direct.update(real, real=True)
    direct.update(fake, real=False)
    ours = DistributionScores(["fid"])
    with torch.no_grad():
        ours.update(net(real), None, real=True)
        ours.update(net(fake), None, real=False)
    assert ours.compute(kid_subset_size=2)["fid"] == pytest.approx(float(direct.compute()), rel=1e-6)


def test_paired_scores_on_a_known_case():
    target = torch.zeros(2, 3, 8, 8)
    output = torch.full((2, 3, 8, 8), 0.1)
    paired = PairedScores()
    paired.update(output, target)
    scores = paired.compute()
    assert scores["l1"] == pytest.approx(0.1)
    assert scores["psnr"] == pytest.approx(20.0, rel=1e-4)  # 10 log10(1 / 0.01)
    paired.reset()
    paired.update(target, target)
    assert paired.compute()["ssim"] == pytest.approx(1.0)


# --- the evaluator ---------------------------------------------------------------------------------
def pixel_evaluator(**settings) -> Evaluator:
    settings = {"num_samples": 40, "batch_size": 16, "kid_subset_size": 10, **settings}
    return Evaluator(torch.nn.Flatten(), classifier=CustomFeatures(IntensityClassifier(), classifies=True),
                     scores=["fid", "kid"], **settings)


def test_samples_that_are_the_reference_images_score_near_zero(digits_datamodule):
    reference = torch.stack([item["image"] for item in digits_datamodule.build("test")])
    evaluator = pixel_evaluator()
    copies = evaluator.evaluate(ConstantImages(images=reference), digits_datamodule)
    constant = evaluator.evaluate(ConstantImages(), digits_datamodule)
    assert copies["fid"] < 0.1 * constant["fid"]
    assert copies["kid_mean"] < 0.1 * constant["kid_mean"]
    assert evaluator.last_protocol["reference"] == {"split": "test", "size": 40, "cached": False}


def test_label_accuracy_per_requested_label(digits_datamodule):
    evaluator = pixel_evaluator(samples_per_label=4)
    faithful = evaluator.evaluate(ConstantImages(), digits_datamodule)
    assert faithful["label_accuracy"] == 1.0
    mixed_up = evaluator.evaluate(ConstantImages(wrong={3: 4}), digits_datamodule)
    assert mixed_up["label_accuracy_3"] == 0.0 and mixed_up["label_accuracy_4"] == 1.0
    assert mixed_up["label_accuracy"] == pytest.approx(0.9)


def test_a_seed_fixes_the_scores_and_the_run_random_state_is_untouched(digits_datamodule):
    evaluator = pixel_evaluator(reference_size=30)
    model = ConstantImages(images=torch.randn(50, 1, 8, 8))
    torch.manual_seed(123)
    first = evaluator.evaluate(model, digits_datamodule, seed=5)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert evaluator.evaluate(model, digits_datamodule, seed=5) == first
    assert torch.equal(torch.rand(3), after)  # the same as if nothing had been evaluated
    other = evaluator.evaluate(model, digits_datamodule, seed=6)
    assert other["fid"] != first["fid"]
    assert evaluator.last_protocol["reference"]["size"] == 30


def test_bad_settings_are_named():
    with pytest.raises(UserError, match="metrics.scores has 'fidd'"):
        Evaluator(torch.nn.Flatten(), scores=["fidd"])
    with pytest.raises(UserError, match="metrics.num_samples"):
        Evaluator(torch.nn.Flatten(), num_samples=1)


# --- the record ------------------------------------------------------------------------------------
def test_summary_over_seeds_has_mean_and_sample_std():
    summary = summarize([{"fid": 1.0, "kid_mean": 0.1}, {"fid": 3.0, "kid_mean": 0.3}])
    assert summary["fid"] == {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "values": [1.0, 3.0]}
    assert summarize([{"fid": 1.0}])["fid"]["std"] is None


def test_records_are_appended_and_an_unreadable_file_is_kept(tmp_path):
    path = tmp_path / "last.eval.json"
    append_record(path, new_record({"fid": 1.0}, {"num_samples": 10}, seeds=[0]))
    append_record(path, new_record({"fid": 2.0}, {"num_samples": 10}, seeds=[1]))
    records = json.loads(path.read_text())
    assert [r["scores"]["fid"] for r in records] == [1.0, 2.0]
    versions = records[0]["protocol"]["versions"]
    assert versions["torch"] == importlib.metadata.version("torch")
    assert {"torchmetrics", "torchvision", "python", "gan-cli"} <= versions.keys()

    path.write_text("{ not json")
    append_record(path, new_record({"fid": 3.0}, {}))
    assert (tmp_path / "last.eval.json.unreadable").read_text() == "{ not json"
    assert len(json.loads(path.read_text())) == 1


def test_custom_feature_network_hash_follows_its_weights():
    net = torch.nn.Linear(4, 2)
    before = weights_sha256(net)
    with torch.no_grad():
        net.weight[0, 0] += 1
    assert weights_sha256(net) != before
    assert CustomFeatures(net).describe()["weights_sha256"] == weights_sha256(net)
