"""A Bernoulli restricted Boltzmann machine: binary visible units v, binary hidden units h and the energy
E(v, h) = -b'v - c'h - v'Wh (Hinton 2012, "A practical guide to training RBMs"; Fischer & Igel 2014).

The network holds the parameters and what follows exactly from the energy: the free energy, both
conditionals, Gibbs sampling, the pseudo-log-likelihood, and the contrastive-divergence estimate of the log-likelihood gradient. Training schedules (CD-k or persistent
chains, momentum, weight decay) live in gan_cli.models.classic.rbm and gan_cli.models.classic.dbn.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: N x visible x hidden numbers held at once by the vectorised pseudo-log-likelihood (64 MiB in float32)
PLL_CHUNK = 1 << 24


class RBMNet(nn.Module):
    """W (visible x hidden), b (visible bias), c (hidden bias); W ~ N(0, init_std^2), biases zero (as in
    Hinton's guide, section 8, and scikit-learn's BernoulliRBM)."""

    def __init__(self, visible: int, hidden: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.visible, self.hidden = visible, hidden
        self.W = nn.Parameter(torch.randn(visible, hidden) * init_std)
        self.b = nn.Parameter(torch.zeros(visible))
        self.c = nn.Parameter(torch.zeros(hidden))

    # --- the energy and what follows from it ----------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) = -b'v - c'h - v'Wh for each row of v and h."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)) = -b'v - sum_j softplus(c_j + (v'W)_j), for each row of v."""
        return -(v @ self.b) - F.softplus(self.hidden_logits(v)).sum(-1)

    def hidden_logits(self, v: Tensor) -> Tensor:
        return torch.addmm(self.c, v, self.W)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h_j = 1 | v) = sigmoid(c_j + (v'W)_j)."""
        return self.hidden_logits(v).sigmoid_()

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)."""
        return torch.addmm(self.b, h, self.W.t()).sigmoid_()

    def reconstruct(self, v: Tensor) -> Tensor:
        """The mean-field reconstruction p(v | h = p(h | v)): deterministic, for the reconstruction error."""
        return self.visible_probs(self.hidden_probs(v))

    # --- sampling -------------------------------------------------------------------------------------
    def gibbs(self, v: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        """`steps` rounds of block Gibbs sampling from v: h ~ p(h | v), then v ~ p(v | h).

        Returns the last binary visible states and their probabilities p(v | h) (the mean of the last
        draw, which shows a sample with less noise)."""
        probs = v
        for _ in range(steps):
            probs = self.visible_probs(bernoulli(self.hidden_probs(v)))
            v = bernoulli(probs)
        return v, probs

    # --- contrastive divergence -----------------------------------------------------------------------
    @torch.no_grad()
    def cd_step(self, v: Tensor, k: int, reconstruction: str = "probabilities",
                hidden: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run the negative phase of CD-k (negative_phase) and put the CD estimate into the parameters'
        .grad (set_statistics). Returns (F(v) - F(v~); v~; the chains' next hidden states or None without
        `hidden`)."""
        visible, logits, probs, following = self.negative_phase(v, k, reconstruction, hidden)
        self.set_statistics(visible, probs)
        return self.free_energy_difference(visible, logits), visible[len(v):], following

    @torch.no_grad()
    def negative_phase(self, v: Tensor, k: int, reconstruction: str = "probabilities",
                       hidden: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The chain of CD-k: it starts at h ~ p(h | v) (CD-k) or at the binary hidden states `hidden` of
        persistent chains (PCD), and takes k steps v ~ p(v | h), h ~ p(h | v).

        v~ is the last step's p(v | h) with reconstruction="probabilities" (Hinton's guide 3.2: less
        sampling noise) or its binary sample with "sample" (scikit-learn, Tieleman 2008).
        Returns both phases' rows [v; v~] (2N, D), their hidden logits and probabilities [h; h~] (2N, H),
        and the chains' next binary hidden states (None without `hidden`)."""
        n = v.shape[0]
        if hidden is None:  # CD-k: the chain starts at the data
            logits = self.hidden_logits(v)
            h = torch.sigmoid(logits)
            state = bernoulli(h)
        else:
            state = hidden
        for step in range(k):
            probs = self.visible_probs(state)
            sample = bernoulli(probs)
            v_neg = probs if reconstruction == "probabilities" and step == k - 1 else sample
            if step < k - 1:
                state = bernoulli(self.hidden_probs(v_neg))
        visible = torch.cat([v, v_neg])
        if hidden is None:
            logits_neg = self.hidden_logits(v_neg)
            logits, probs = torch.cat([logits, logits_neg]), torch.cat([h, torch.sigmoid(logits_neg)])
        else:  # v~ does not depend on v: one product gives the hidden logits of both phases
            logits = self.hidden_logits(visible)
            probs = torch.sigmoid(logits)
        following = None
        if hidden is not None:  # the chain carries on from its binary state
            following = bernoulli(probs[n:] if v_neg is sample else self.hidden_probs(sample))
        return visible, logits, probs, following

    @torch.no_grad()
    def set_cd_gradients(self, v: Tensor, v_neg: Tensor) -> Tensor:
        """Put minus the CD estimate into each parameter's .grad, so that an SGD step of learning rate eta
        makes the lecture's update
            dW = eta (v h' - v~ h~') / N,   db = eta (v - v~) / N,   dc = eta (h - h~) / N   (summed over the batch)
        where h = p(h | v) and h~ = p(h | v~) are probabilities (Hinton's guide 3.3: the statistics use
        probabilities, the chain is driven by sampled binary states).

        This is the gradient of F(v) - F(v~) (batch means) with v~ held fixed; its value is returned."""
        visible = torch.cat([v, v_neg])
        logits = self.hidden_logits(visible)
        self.set_statistics(visible, torch.sigmoid(logits))
        return self.free_energy_difference(visible, logits)

    def set_statistics(self, visible: Tensor, hidden: Tensor) -> None:
        """The .grad of set_cd_gradients from both phases' rows `visible` = [v; v~] (2N rows) and their
        hidden probabilities `hidden` = [h; h~]."""
        dtype = self.W.dtype  # under mixed precision the products may be bf16: the gradients are the parameters'
        for param, gradient in zip((self.W, self.b, self.c), self.gradients(visible, hidden)):
            param.grad = (gradient[0] @ gradient[1] if isinstance(gradient, tuple) else gradient).to(dtype)

    def gradients(self, visible: Tensor, hidden: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor]:
        """Minus the CD estimate for W, b and c. Each is a sum over both phases' rows, weighted -1/N for the
        data's and 1/N for the chain's: W's is the product [v; v~]' [-h; h~] / N, given as its two factors
        so that it can be added to a tensor in place (sgd_step) without being formed."""
        phase = phase_weights(len(visible) // 2, hidden.dtype, hidden.device)  # (2N, 1)
        weights = hidden * phase
        return (visible.t(), weights), (visible.t() @ phase).view(-1), weights.sum(0)

    @torch.no_grad()
    def sgd_step(self, optimizer: torch.optim.SGD, visible: Tensor, hidden: Tensor) -> None:
        """What set_statistics followed by optimizer.step() does, in place and faster: W's gradient is
        added to W (or to its momentum buffer) by one matrix product, never formed (for small batches that
        saves a third of an update's time on a CPU). `optimizer` is a torch.optim.SGD over this RBM's
        parameters (param_groups); its settings and momentum buffers are used and kept exactly as its own
        step would, so checkpoints and resumed runs do not tell the two apart."""
        dtype = self.W.dtype  # the parameters' (under mixed precision the chain's states may be bf16)
        gradients = dict(zip((self.W, self.b, self.c), self.gradients(visible.to(dtype), hidden.to(dtype))))
        for group in optimizer.param_groups:
            if group["nesterov"] or group["dampening"] or group["maximize"]:
                raise ValueError("sgd_step does plain SGD with momentum and weight decay only")
            for param in group["params"]:
                sgd_update(param, gradients[param], optimizer.state[param], group["lr"], group["momentum"],
                           group["weight_decay"])

    def free_energy_difference(self, visible: Tensor, logits: Tensor) -> Tensor:
        """mean F(v) - mean F(v~) from both phases' rows [v; v~] and their hidden logits."""
        free_energy = -(visible @ self.b) - F.softplus(logits).sum(-1)
        n = len(visible) // 2
        return free_energy[:n].mean() - free_energy[n:].mean()

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups: weight decay on W only, never on the biases (Hinton's guide, section 10)."""
        return [{"params": [self.W], "weight_decay": weight_decay},
                {"params": [self.b, self.c], "weight_decay": 0.0}]

    # --- scores ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def pseudo_log_likelihood(self, v: Tensor) -> Tensor:
        """The exact pseudo-log-likelihood sum_i log p(v_i | v_-i) of each row of v (binary).

        p(v_i | v_-i) = sigmoid(F(v with bit i flipped) - F(v)). Flipping bit i changes v by d_i = 1 - 2 v_i,
        so b'v by b_i d_i and the hidden logits by d_i W_i: all D flips of a row are one (D, H) tensor."""
        rows = max(1, PLL_CHUNK // max(1, self.visible * self.hidden))
        return torch.cat([self._pll(chunk) for chunk in v.split(rows)]) if len(v) else v.new_zeros(0)

    def _pll(self, v: Tensor) -> Tensor:
        logits = self.hidden_logits(v)  # (N, H)
        flip = 1 - 2 * v  # (N, D)
        flipped = logits.unsqueeze(1) + flip.unsqueeze(2) * self.W  # (N, D, H)
        delta = -flip * self.b - F.softplus(flipped).sum(-1) + F.softplus(logits).sum(-1, keepdim=True)  # F(v^i) - F(v)
        return F.logsigmoid(delta).sum(-1)


def bernoulli(p: Tensor) -> Tensor:
    """Binary states drawn with probabilities p (as torch.bernoulli, several times faster on a CPU)."""
    return torch.rand_like(p).lt_(p)  # in place: 1.0 where the uniform draw is below p, in p's dtype


@functools.lru_cache(maxsize=16)
def phase_weights(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (2n, 1) column: -1/n for the n data rows, then 1/n for the n rows of the chains (never written to)."""
    weights = torch.full((2 * n, 1), 1.0 / n, dtype=dtype, device=device)
    weights[:n] = -1.0 / n
    return weights


def sgd_update(param: Tensor, gradient: Tensor | tuple[Tensor, Tensor], state: dict, lr: float, momentum: float,
               weight_decay: float) -> None:
    """torch.optim.SGD's update of one parameter (no dampening or Nesterov), with the gradient g either a
    tensor or the two factors (A, B) of g = A @ B, then added by addmm_ without being formed:
        d = g + weight_decay * p;   buf = momentum * buf + d (buf = d the first time);   p -= lr * buf."""
    def scale_and_add(target: Tensor, beta: float, alpha: float = 1.0) -> Tensor:  # beta * target + alpha * g
        if isinstance(gradient, tuple):
            return target.addmm_(*gradient, beta=beta, alpha=alpha)
        return (target.mul_(beta) if beta != 1 else target).add_(gradient, alpha=alpha)

    if momentum == 0:  # p = (1 - lr wd) p - lr g
        scale_and_add(param, 1 - lr * weight_decay, -lr)
        return
    buffer = state.get("momentum_buffer")
    if buffer is None:
        buffer = state["momentum_buffer"] = scale_and_add(param.mul(weight_decay), 1.0)
    else:
        scale_and_add(buffer, momentum)
        if weight_decay:
            buffer.add_(param, alpha=weight_decay)
    param.add_(buffer, alpha=-lr)


def momentum_at(epoch: int, initial: float, final: float, switch_epoch: int) -> float:
    """Hinton's guide, section 9: a small momentum while the weights settle, a large one after."""
    return initial if epoch < switch_epoch else final


def set_momentum(optimizer, momentum: float) -> None:
    for group in optimizer.param_groups:
        group["momentum"] = momentum

