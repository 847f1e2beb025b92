"""model=rbm's mathematics: the Bernoulli RBM's exact quantities against brute force on tiny machines (free
energy, log-likelihood, pseudo-log-likelihood, Gibbs chains), and the CD update against the lecture's formula
(by hand, with Hinton's momentum and weight decay, in a training step, CD-k and persistent chains, the in-place
SGD step). Settings and training, resuming, sampling and evaluating through the runner are in
tests/test_rbm_runner.py."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import gan_cli.models.classic.rbm_nets as rbm_module
from gan_cli.commands.train import build
from gan_cli.models.classic.rbm import RBM
from gan_cli.models.classic.rbm_nets import RBMNet, momentum_at
from gan_cli.models.classic.rbm_shared import momentum_optimizer
from tests.rbm_exact import log_likelihood, log_partition, stochastic_pseudo_log_likelihood
from tests.rbm_helpers import TINY, snapshot


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
    log_p = log_likelihood(net, v)
    assert log_p.tolist() == pytest.approx([math.log(p) for p in joint.values()], rel=1e-10)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    z = sum(math.exp(-brute_energy(net, s, h)) for s in states(visible) for h in states(hidden))
    assert float(log_partition(net)) == pytest.approx(math.log(z), rel=1e-12)


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
    estimate = stochastic_pseudo_log_likelihood(net, many).mean()
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
