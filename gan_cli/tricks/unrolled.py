"""`unrolled`: Metz et al. 2017, "Unrolled Generative Adversarial Networks". G's adversarial term is computed
against D advanced `steps` updates ahead (on the current real batch and G's current samples, with D's own
optimizer settings and state), so G is pushed towards samples that a D reacting to them would still accept,
rather than towards the current D's blind spots: this counters mode collapse. D itself, and its optimizer,
are left exactly as they were: only G's update sees the unrolled D.

`second_order: true` (the paper's method) differentiates through the unrolled updates (their equation 12):
the D updates are written as functions of G's samples (differentiable SGD or Adam steps with the state of D's
optimizer), so G's gradient includes how D would react to a change of G. `second_order: false` is the cheap
surrogate that treats the unrolled D's weights as constants (a copy of D trained `steps` more updates).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.errors import UserError
from gan_cli.tricks.base import Trick


def raw_optimizer(optimizer) -> Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper


def clone_optimizer(optimizer: Optimizer, source: nn.Module, target: nn.Module) -> Optimizer:
    """An optimizer of the same kind and settings for `target` (a copy of `source`), with a copy of the state
    `optimizer` keeps for `source`'s parameters (e.g. Adam's moments)."""
    optimizer = raw_optimizer(optimizer)
    mapping = {id(p): q for p, q in zip(source.parameters(), target.parameters())}
    groups = []
    for group in optimizer.param_groups:
        params = [mapping[id(p)] for p in group["params"] if id(p) in mapping]
        if params:
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
    clone = type(optimizer)(groups)
    for param in source.parameters():
        if param in optimizer.state:
            clone.state[mapping[id(param)]] = {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v)
                                               for k, v in optimizer.state[param].items()}
    return clone


class _WithTensors(nn.Module):
    """Calls `network` with its parameters and buffers replaced by `tensors` (torch.func.functional_call)."""

    def __init__(self, network: nn.Module, tensors: dict[str, Tensor]) -> None:
        super().__init__()
        self.network, self.tensors = network, tensors

    def forward(self, *args):
        # the unrolled weights are differentiated twice, which compiled networks (engine.compile) cannot be
        with torch.compiler.set_stance("force_eager"):
            return torch.func.functional_call(self.network, self.tensors, args)


class _DifferentiableStep:
    """One update of D's weights by its optimizer's rule (Adam/AdamW or SGD), written with tensor operations so
    that the new weights stay differentiable w.r.t. the gradient; the state starts from the optimizer's."""

    def __init__(self, optimizer: Optimizer, network: nn.Module) -> None:
        optimizer = raw_optimizer(optimizer)
        kind = type(optimizer).__name__
        if kind not in ("Adam", "AdamW", "SGD"):
            raise UserError(f"tricks.unrolled.second_order=true unrolls Adam, AdamW or SGD updates, not {kind}; "
                            "use one of them, or tricks.unrolled.second_order=false.")
        self.kind = kind
        group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        self.groups, self.state = {}, {}
        for name, param in network.named_parameters():
            self.groups[name] = group_of[id(param)]
            saved = optimizer.state.get(param, {})
            self.state[name] = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in saved.items()}

    def __call__(self, name: str, weight: Tensor, grad: Tensor) -> Tensor:
        group, state = self.groups[name], self.state[name]
        lr, decay = group["lr"], group.get("weight_decay", 0.0)
        if self.kind == "SGD":
            grad = grad + decay * weight if decay else grad
            if group.get("momentum", 0.0):
                buf = state.get("momentum_buffer")
                buf = grad if buf is None else group["momentum"] * buf + grad
                state["momentum_buffer"] = buf
                grad = buf
            return weight - lr * grad
        beta1, beta2 = group["betas"]
        if self.kind == "AdamW":
            weight = weight * (1 - lr * decay)
        elif decay:
            grad = grad + decay * weight
        step = state.get("step", 0) + 1  # a tensor on the GPU with a fused optimizer: not read on the host
        m = beta1 * state.get("exp_avg", torch.zeros_like(weight)) + (1 - beta1) * grad
        v = beta2 * state.get("exp_avg_sq", torch.zeros_like(weight)) + (1 - beta2) * grad * grad
        state.update(step=step, exp_avg=m, exp_avg_sq=v)
        m_hat, v_hat = m / (1 - beta1 ** step), v / (1 - beta2 ** step)
        return weight - lr * m_hat / ((v_hat + 1e-30).sqrt() + group["eps"])  # + 1e-30: sqrt's gradient at 0


class Unrolled(Trick):
    def __init__(self, steps: int = 5, second_order: bool = True) -> None:
        super().__init__()
        if steps < 0:
            raise ValueError("tricks.unrolled.steps must be at least 0")
        self.steps, self.second_order = steps, second_order

    def generator_critic(self, model, critic, real: Tensor, fake: Tensor):
        if self.steps == 0:
            return critic
        if self.second_order:
            return self._differentiable(model, critic, real, fake)
        return self._copy(model, critic, real, fake)

    def _copy(self, model, critic, real: Tensor, fake: Tensor):
        """A copy of D trained `steps` updates on G's (detached) samples."""
        original = critic.network
        ahead = copy.deepcopy(original).requires_grad_(True)
        optimizer = clone_optimizer(model.discriminator_optimizer(), original, ahead)
        unrolled = critic.using(ahead)
        fake = fake.detach()
        with torch.enable_grad():
            for _ in range(self.steps):
                terms, _, _ = model.discriminator_terms(unrolled, real, fake)
                optimizer.zero_grad(set_to_none=True)
                sum(terms.values()).backward()
                optimizer.step()
                model.loss.after_d_step(ahead)
        ahead.requires_grad_(False)  # G's gradient passes through it without accumulating in it
        return unrolled

    def _differentiable(self, model, critic, real: Tensor, fake: Tensor):
        """D's weights after `steps` updates as functions of G's samples (which keep their graph)."""
        network = critic.network
        step = _DifferentiableStep(model.discriminator_optimizer(), network)
        weights = {name: p.detach().requires_grad_(True) for name, p in network.named_parameters()}
        buffers = {name: b.clone() for name, b in network.named_buffers()}  # D's own statistics stay as they are
        clip = model.loss.clip_value
        with torch.enable_grad():
            for _ in range(self.steps):
                unrolled = critic.using(_WithTensors(network, {**weights, **buffers}))
                terms, _, _ = model.discriminator_terms(unrolled, real, fake)
                grads = torch.autograd.grad(sum(terms.values()), list(weights.values()), create_graph=True,
                                            allow_unused=True)
                weights = {name: (w if g is None else step(name, w, g)) for (name, w), g in zip(weights.items(), grads)}
                if clip is not None:  # WGAN's weight clipping
                    weights = {name: w.clamp(-clip, clip) for name, w in weights.items()}
        return critic.using(_WithTensors(network, {**weights, **buffers}))
