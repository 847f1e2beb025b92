"""model=rbm: the Bernoulli RBM's exact quantities against brute force on tiny machines, the CD update against
the lecture's formula, and training, resuming, sampling and evaluating through the runner."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

import gan_cli.nets.rbm as rbm_module
from gan_cli.errors import UserError
from gan_cli.evaluating import evaluate
from gan_cli.models.rbm import RBM, VisibleCoding, dataset_images, momentum_optimizer, rbm_scores
from gan_cli.nets.rbm import RBMNet, momentum_at
from gan_cli.runner import build, train
from gan_cli.sampling import sample
from tests.conftest import POOLED, QUICK, compose_train

#: a tiny RBM on 8x8 synthetic images, quick sampling chains
TINY = [*QUICK, "model=rbm", "data.image_size=8", "model.hidden=16", "model.gibbs_steps=20", "model.monitor_size=32",
        "logger=none"]


def random_rbm(visible: int, hidden: int, seed: int = 0) -> RBMNet:
    torch.manual_seed(seed)
    net = RBMNet(visible, hidden).double()
    with torch.no_grad():  # large enough parameters that the states' probabilities differ a lot
        for p in net.parameters():
            p.normal_(0, 1)
    return net


def states(n: int) -> list[tuple[int, ...]]:
    return list(itertools.product((0, 1), repeat=n))


def brute_energy(net: RBMNet, v, h) -> float:
    """E(v, h) = -sum_i b_i v_i - sum_j c_j h_j - sum_ij v_i W_ij h_j, one number at a time."""
    W, b, c = net.W.tolist(), net.b.tolist(), net.c.tolist()
    return (-sum(b[i] * v[i] for i in range(len(v))) - sum(c[j] * h[j] for j in range(len(h)))
            - sum(v[i] * W[i][j] * h[j] for i in range(len(v)) for j in range(len(h))))


def brute_joint(net: RBMNet) -> dict[tuple[int, ...], float]:
    """p(v) for every visible state, by summing exp(-E) over all 2^(D+H) states."""
    unnormalised = {v: sum(math.exp(-brute_energy(net, v, h)) for h in states(net.hidden)) for v in states(net.visible)}
    z = sum(unnormalised.values())
    return {v: value / z for v, value in unnormalised.items()}


# --- the energy and its exact consequences -----------------------------------------------------------
def test_free_energy_is_minus_the_log_of_the_sum_over_h_of_a_3x2_rbm():
    net = random_rbm(3, 2)
    v = torch.tensor(states(3), dtype=torch.float64)
    expected = [-math.log(sum(math.exp(-brute_energy(net, s, h)) for h in states(2))) for s in states(3)]
    assert net.free_energy(v).tolist() == pytest.approx(expected, rel=1e-12)
    h = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(8, 2)
    assert net.energy(v, h).tolist() == pytest.approx([brute_energy(net, s, (1, 0)) for s in states(3)], rel=1e-12)


@pytest.mark.parametrize("visible, hidden", [(3, 2), (2, 3)])  # log Z enumerates the hidden, then the visible side
def test_exact_log_likelihood_over_all_v_matches_the_enumerated_joint(visible, hidden):
    net = random_rbm(visible, hidden, seed=1)
    joint = brute_joint(net)
    v = torch.tensor(list(joint), dtype=torch.float64)
    log_p = net.log_likelihood(v)
    assert log_p.tolist() == pytest.approx([math.log(p) for p in joint.values()], rel=1e-10)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    z = sum(math.exp(-brute_energy(net, s, h)) for s in states(visible) for h in states(hidden))
    assert float(net.log_partition()) == pytest.approx(math.log(z), rel=1e-12)


def test_exact_pseudo_log_likelihood_matches_the_conditionals_of_the_joint(monkeypatch):
    net = random_rbm(4, 3, seed=2)
    joint = brute_joint(net)
    expected = []
    for v in joint:
        flips = [tuple(1 - x if j == i else x for j, x in enumerate(v)) for i in range(4)]
        expected.append(sum(math.log(joint[v] / (joint[v] + joint[f])) for f in flips))
    v = torch.tensor(list(joint), dtype=torch.float64)
    assert net.pseudo_log_likelihood(v).tolist() == pytest.approx(expected, rel=1e-10)
    monkeypatch.setattr(rbm_module, "PLL_CHUNK", 4 * 3 * 3)  # 3 rows at a time: the chunks join up the same
    assert net.pseudo_log_likelihood(v).tolist() == pytest.approx(expected, rel=1e-10)
    # scikit-learn's one-bit estimate is unbiased: D log p(v_i | v_-i) for a random i averages to the sum
    torch.manual_seed(0)
    many = v[5:6].expand(40000, 4)
    estimate = net.stochastic_pseudo_log_likelihood(many).mean()
    assert float(estimate) == pytest.approx(expected[5], rel=0.02)


def test_gibbs_chains_reach_the_exact_distribution_of_a_small_rbm():
    net = random_rbm(3, 2, seed=3)
    with torch.no_grad():
        net.W.mul_(0.7)  # well-mixing
    torch.manual_seed(0)
    v, _ = net.gibbs(torch.bernoulli(torch.full((20000, 3), 0.5, dtype=torch.float64)), 30)
    assert total_variation(net, v) < 0.02


# --- the CD update --------------------------------------------------------------------------------------
def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def lecture_update(net: RBMNet, v, v_neg, eta: float):
    """dW = eta (v h' - v~ h~') / N, db = eta (v - v~) / N, dc = eta (h - h~) / N with h = p(h | v), h~ = p(h | v~),
    summed over the batch, computed one number at a time."""
    W, b, c = net.W.tolist(), net.b.tolist(), net.c.tolist()
    D, H, N = len(b), len(c), len(v)

    def h_probs(x):
        return [sigmoid(c[j] + sum(x[i] * W[i][j] for i in range(D))) for j in range(H)]

    dW = [[0.0] * H for _ in range(D)]
    db, dc = [0.0] * D, [0.0] * H
    for x, x_neg in zip(v, v_neg):
        h, h_neg = h_probs(x), h_probs(x_neg)
        for i in range(D):
            db[i] += eta * (x[i] - x_neg[i]) / N
            for j in range(H):
                dW[i][j] += eta * (x[i] * h[j] - x_neg[i] * h_neg[j]) / N
        for j in range(H):
            dc[j] += eta * (h[j] - h_neg[j]) / N
    return torch.tensor(dW), torch.tensor(db), torch.tensor(dc)


def hand_model(**settings) -> RBM:
    """A 2x2-pixel RBM (4 visible units) with 2 hidden units and set parameters."""
    settings = {"initial_momentum": 0.0, "final_momentum": 0.0, "weight_decay": 0.0, "lr": 0.5} | settings
    model = RBM(channels=1, image_size=2, mean=[0.5], std=[0.5], hidden=2, **settings)
    with torch.no_grad():
        model.rbm.W.copy_(torch.tensor([[0.5, -1.0], [0.25, 0.0], [-0.5, 1.5], [1.0, 0.75]]))
        model.rbm.b.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        model.rbm.c.copy_(torch.tensor([-0.5, 0.4]))
    return model


def snapshot(net: RBMNet) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (net.W, net.b, net.c)]


def test_one_cd_step_is_the_lecture_update_on_a_hand_case():
    model = hand_model()
    v = [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]]  # the data
    v_neg = [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]  # the chain's states after k steps
    expected = lecture_update(model.rbm, v, v_neg, eta=0.5)
    before = snapshot(model.rbm)
    optimizer = model.configure_optimizers()
    model.rbm.set_cd_gradients(torch.tensor(v), torch.tensor(v_neg))
    optimizer.step()
    for p, p0, delta in zip(snapshot(model.rbm), before, expected):
        assert torch.allclose(p - p0, delta, atol=1e-6), (p - p0, delta)


def test_momentum_and_weight_decay_follow_hintons_guide():
    eta, m, cost = 0.5, 0.9, 0.01
    model = hand_model(lr=eta, initial_momentum=m, weight_decay=cost)
    v, v_neg = torch.tensor([[1.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    optimizer = model.configure_optimizers()
    W0, b0, _ = snapshot(model.rbm)
    dW1, db1, _ = lecture_update(model.rbm, v.tolist(), v_neg.tolist(), eta)
    step1 = (dW1 - eta * cost * W0, db1)  # weight decay on W only
    model.rbm.set_cd_gradients(v, v_neg)
    optimizer.step()
    W1, b1, _ = snapshot(model.rbm)
    assert torch.allclose(W1 - W0, step1[0], atol=1e-6) and torch.allclose(b1 - b0, step1[1], atol=1e-6)
    dW2, db2, _ = lecture_update(model.rbm, v.tolist(), v_neg.tolist(), eta)
    model.rbm.set_cd_gradients(v, v_neg)
    optimizer.step()
    W2, b2, _ = snapshot(model.rbm)
    # delta = m delta' + eta (cd - cost W)
    assert torch.allclose(W2 - W1, m * step1[0] + dW2 - eta * cost * W1, atol=1e-6)
    assert torch.allclose(b2 - b1, m * step1[1] + db2, atol=1e-6)
    assert [momentum_at(e, 0.5, 0.9, 5) for e in (0, 4, 5, 9)] == [0.5, 0.5, 0.9, 0.9]


def test_a_training_step_applies_the_formula_to_the_batch_and_its_own_chain(make_cfg, monkeypatch, one_thread):
    cfg = make_cfg(*TINY, "data.image_size=4", "model.hidden=3", "model.k=2", "model.lr=0.3",
                   "model.initial_momentum=0", "model.final_momentum=0", "model.weight_decay=0",
                   "model.init_visible_bias=false", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
                   "callbacks=none")
    datamodule, model, trainer = build(cfg)
    seen = {}
    set_statistics = model.rbm.set_statistics

    def recorded(visible, hidden_probs):
        v, v_neg = visible.chunk(2)
        seen.update(v=v.clone(), v_neg=v_neg.clone())
        return set_statistics(visible, hidden_probs)

    monkeypatch.setattr(model.rbm, "set_statistics", recorded)
    before_net = RBMNet(16, 3)
    before_net.load_state_dict(model.rbm.state_dict())
    trainer.fit(model, datamodule=datamodule)
    v = seen["v"]  # the batch's pixels mapped to [0, 1]
    pixels = datamodule.train_set.images.flatten(1) * 0.5 + 0.5
    assert all(((pixels - row).abs().amax(1) < 1e-6).any() for row in v) and len(v) == 16
    # reconstruction=probabilities: v~ is the last step's p(v | h), not a binary state
    assert ((seen["v_neg"] > 0) & (seen["v_neg"] < 1)).all()
    expected = lecture_update(before_net, v.tolist(), seen["v_neg"].tolist(), eta=0.3)
    for p, p0, delta in zip(snapshot(model.rbm), snapshot(before_net), expected):
        assert torch.allclose(p - p0, delta, atol=1e-6)


def total_variation(net: RBMNet, v: torch.Tensor) -> float:
    """Between the rows of binary v (3 units) and the RBM's exact distribution."""
    codes = (v * torch.tensor([4.0, 2.0, 1.0], dtype=v.dtype)).sum(1).long()
    empirical = torch.bincount(codes, minlength=8).double() / len(codes)
    exact = torch.tensor(list(brute_joint(net).values()), dtype=torch.float64)  # states() counts in binary order
    return 0.5 * float((empirical - exact).abs().sum())


def test_the_negative_phase_runs_k_gibbs_steps_and_persistent_chains_carry_on():
    net = random_rbm(3, 2, seed=4)
    data = torch.zeros(20000, 3, dtype=torch.float64)  # an unlikely state: p(0, 0, 0) = 0.06
    torch.manual_seed(0)
    far = [total_variation(net, net.cd_step(data, k, "sample")[1]) for k in (1, 40)]
    assert far[0] > 0.1 and far[1] < 0.02  # CD-1 stays near the data; CD-40 reaches the model's distribution
    # PCD: each update takes one step from where the chains were, so 40 updates are a 40-step chain
    hidden = torch.zeros(20000, 2, dtype=torch.float64)
    for _ in range(40):
        _, v_neg, hidden = net.cd_step(data, 1, "sample", hidden)
    assert total_variation(net, v_neg) < 0.02 and set(hidden.unique().tolist()) == {0.0, 1.0}


# --- settings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("model.k=0", r"model\.k=0: CD-k runs k Gibbs steps"),
    ("model.hidden=0", r"model\.hidden=0"),
    ("model.lr=0", r"model\.lr=0"),
    ("model.final_momentum=1.0", r"model\.final_momentum=1\.0: momentum must be in \[0, 1\)"),
    ("model.binarize=yes", r"model\.binarize='yes': choose one of none, threshold, sample"),
    ("model.reconstruction=mean", r"model\.reconstruction='mean'"),
    ("model.gibbs_steps=0", r"model\.gibbs_steps=0"),
])
def test_bad_settings_name_the_setting_and_the_fix(make_cfg, override, message):
    with pytest.raises(InstantiationException, match=message) as error:
        build(make_cfg(*TINY, override))
    assert isinstance(error.value.__cause__, UserError)


def test_trains_under_bf16_mixed_precision(make_cfg, one_thread):
    datamodule, model, trainer = build(make_cfg(*TINY, "model.persistent=true", "trainer.precision=bf16-mixed",
                                                "trainer.limit_train_batches=2", "trainer.limit_val_batches=0",
                                                "callbacks=none"))
    before = snapshot(model.rbm)
    trainer.fit(model, datamodule=datamodule)
    for p, p0 in zip(snapshot(model.rbm), before):
        assert p.dtype == torch.float32 and torch.isfinite(p).all() and not torch.equal(p, p0)


def test_an_adversarial_loss_is_refused(make_cfg):
    with pytest.raises(UserError, match="has no adversarial loss, so loss=hinge would change nothing"):
        build(make_cfg(*TINY, "loss=hinge"))


def test_visible_coding_maps_normalised_images_to_units_and_back():
    coding = VisibleCoding(1, 2, [0.5], [0.5], "threshold")
    images = torch.tensor([[-1.0, 0.2], [0.0, 1.0]]).view(1, 1, 2, 2)  # intensities 0, 0.6, 0.5, 1
    assert coding.unit(images)[0].tolist() == pytest.approx([0.0, 0.6, 0.5, 1.0])
    assert coding.visible(images, draw=True).tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert torch.allclose(coding.images(coding.unit(images)), images)
    torch.manual_seed(0)
    drawn = VisibleCoding(1, 2, [0.5], [0.5], "sample").visible(images.expand(4000, 1, 2, 2), draw=True)
    assert drawn.mean(0).tolist() == pytest.approx([0.0, 0.6, 0.5, 1.0], abs=0.03)


# --- through the runner ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs of PCD on the synthetic images with quick metrics: the run folder and its logged metrics."""
    run = tmp_path_factory.mktemp("rbm")
    cfg = compose_train(run, [*TINY, "model.persistent=true", "trainer.max_epochs=2", *POOLED])
    return run, train(cfg)


def test_training_logs_the_scores_and_draws_filters_and_chains(trained):
    run, logged = trained
    for name in ("train/recon_error", "train/free_energy_difference", "val/pll", "val/recon_error",
                 "val/free_energy_gap", "train/pll", "metrics/fid"):
        assert name in logged and math.isfinite(logged[name]), name
    gap = logged["val/free_energy"] - logged["train/free_energy"]
    assert logged["val/free_energy_gap"] == pytest.approx(gap, rel=1e-5)
    assert -64 * math.log(2) < logged["val/pll"] < 0  # 64 binary units, better than fair coins
    for name in ("filters", "samples", "gibbs_chains"):
        assert (run / "samples" / f"{name}_epoch001.png").is_file()


def test_gan_sample_runs_gibbs_chains_of_the_asked_length(trained, tmp_path, monkeypatch):
    run, _ = trained
    lengths = []
    gibbs = RBMNet.gibbs
    monkeypatch.setattr(RBMNet, "gibbs", lambda self, v, steps: lengths.append(steps) or gibbs(self, v, steps))
    base = {"ckpt_path": str(run / "checkpoints" / "last.ckpt"), "seed": 0, "device": "cpu", "num_samples": 6,
            "label": None, "nrow": None, "chain": False}
    output = sample(OmegaConf.create(base | {"output": str(tmp_path / "grid.png"), "gibbs_steps": 7}))
    assert output.is_file() and lengths == [7]
    sample(OmegaConf.create(base | {"output": f"{tmp_path / 'each'}/", "gibbs_steps": None}))
    assert lengths == [7, 20] and len(list((tmp_path / "each").glob("*.png"))) == 6  # model.gibbs_steps by default
    with pytest.raises(UserError, match="gibbs_steps=0"):
        sample(OmegaConf.create(base | {"output": str(tmp_path / "x.png"), "gibbs_steps": 0}))


def test_gan_eval_reports_the_held_out_pll_reconstruction_error_and_free_energy_gap(trained, tmp_path):
    run, _ = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    record, _ = evaluate(compose_train(tmp_path, [f"ckpt_path={ckpt}", "num_samples=16"], config_name="eval"))
    scores = {name: score["mean"] for name, score in record["scores"].items()}
    assert {"fid", "pseudo_log_likelihood", "recon_error", "free_energy_gap"} <= scores.keys()
    from gan_cli.checkpoint import load_model
    from hydra.utils import instantiate

    model, config = load_model(ckpt)
    datamodule = instantiate(config["data"])
    held_out = rbm_scores(model.rbm, model.coding.visible(dataset_images(datamodule.build("test")), draw=False))
    train_part = rbm_scores(model.rbm, model.coding.visible(dataset_images(datamodule.build("train"), 32), draw=False))
    assert scores["pseudo_log_likelihood"] == pytest.approx(float(held_out["pll"].mean()), rel=1e-5)
    assert scores["recon_error"] == pytest.approx(float(held_out["recon_error"].mean()), rel=1e-5)
    gap = held_out["free_energy"].mean() - train_part["free_energy"].mean()
    assert scores["free_energy_gap"] == pytest.approx(float(gap), rel=1e-4, abs=1e-4)
    saved = json.loads(ckpt.with_name("last.eval.json").read_text())[-1]
    assert saved["protocol"]["model_kind"] == "generator"


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_persistent_chains_and_momentum_survive_a_checkpoint(tmp_path, one_thread):
    common = [*TINY, "model.persistent=true", "model.momentum_epochs=1", "callbacks=[rng_state,checkpoints]",
              "trainer.limit_val_batches=0"]
    train(compose_train(tmp_path / "whole", [*common, "trainer.max_epochs=2"]))
    train(compose_train(tmp_path / "cut", [*common, "trainer.max_epochs=1"]))
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert cut["state_dict"]["chains"].shape == (16, 16)  # the chains' hidden states
    assert bool(cut["state_dict"]["chains_started"])
    assert "momentum_buffer" in cut["optimizer_states"][0]["state"][0]
    train(compose_train(tmp_path / "resumed", [*common, "trainer.max_epochs=2",
                                               f"ckpt_path={tmp_path / 'cut' / 'checkpoints' / 'last.ckpt'}"]))
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert whole.keys() == resumed.keys() and not torch.equal(whole["chains"], cut["state_dict"]["chains"])
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.parametrize("persistent", [False, True])
def test_a_loaded_batch_split_into_cd_updates_makes_the_same_updates_as_loading_them_one_by_one(
        tmp_path, one_thread, persistent):
    """model.cd_batch_size=8 on loaded batches of 32 = 4 updates a training step, the very updates (same images,
    order and random draws) of loaded batches of 8; only Lightning's step count differs."""
    common = [*TINY, f"model.persistent={persistent}", "model.momentum_epochs=1", "trainer.max_epochs=2",
              "trainer.limit_val_batches=0", "callbacks=none", "model.cd_batch_size=8"]
    runs = {}
    for name, batch_size in (("one", 8), ("split", 32)):
        datamodule, model, trainer = build(compose_train(tmp_path / name, [*common, f"data.batch_size={batch_size}"]))
        trainer.fit(model, datamodule=datamodule)
        runs[name] = (trainer.global_step, model.state_dict())
    assert (runs["one"][0], runs["split"][0]) == (16, 4)
    for key, value in runs["one"][1].items():
        torch.testing.assert_close(runs["split"][1][key], value, msg=key)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.0, 0.01), (0.9, 0.0), (0.5, 0.01)])
def test_the_in_place_sgd_step_equals_the_torch_optimizers_step(momentum, weight_decay):
    """RBMNet.sgd_step adds W's gradient by one product without forming it: the parameters and the momentum
    buffers after three steps are those of set_statistics + torch.optim.SGD.step."""
    nets = [random_rbm(6, 4, seed=2), random_rbm(6, 4, seed=2)]
    optimizers = [momentum_optimizer(net, 0.3, weight_decay, momentum) for net in nets]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        visible = torch.rand(10, 6, generator=generator, dtype=torch.float64)  # [v; v~] of 5 updates' rows
        hidden = torch.rand(10, 4, generator=generator, dtype=torch.float64)
        nets[0].set_statistics(visible, hidden)
        optimizers[0].step()
        nets[1].sgd_step(optimizers[1], visible, hidden)
    for a, b in zip(snapshot(nets[0]), snapshot(nets[1])):
        torch.testing.assert_close(a, b)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        buffers = [optimizers[0].state[a].get("momentum_buffer"), optimizers[1].state[b].get("momentum_buffer")]
        assert (buffers[0] is None) == (buffers[1] is None) == (momentum == 0)
        if momentum:
            torch.testing.assert_close(*buffers)
    assert all(p.grad is None for p in nets[1].parameters())  # nothing formed


def test_cd_batch_size_must_be_positive(make_cfg):
    with pytest.raises(InstantiationException, match="model.cd_batch_size=0"):
        build(make_cfg(*TINY, "model.cd_batch_size=0"))
