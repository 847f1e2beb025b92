"""`unrolled`: Metz et al. 2017, "Unrolled Generative Adversarial Networks". G's adversarial term is computed
against a copy of D advanced `steps` updates ahead (on the current real batch and G's current samples, with a
copy of D's optimizer), so G is pushed towards samples a better-trained D would still accept rather than
towards the current D's blind spots, which counters mode collapse. D itself, and its optimizer, are left
exactly as they were: only G's update sees the unrolled copy.

The gradient is the paper's first-order one: it flows through the unrolled copy's scores but not back
through the unrolling steps themselves (the surrogate loss f_K with the D parameters treated as constants,
dropping the second-order term of their equation 12).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.tricks.base import Trick


def clone_optimizer(optimizer: Optimizer, source: nn.Module, target: nn.Module) -> Optimizer:
    """An optimizer of the same kind and settings for `target` (a copy of `source`), with a copy of the state
    `optimizer` keeps for `source`'s parameters (e.g. Adam's moments)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper
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


class Unrolled(Trick):
    def __init__(self, steps: int = 5) -> None:
        super().__init__()
        if steps < 0:
            raise ValueError("tricks.unrolled.steps must be at least 0")
        self.steps = steps

    def generator_critic(self, model, critic, real: Tensor, fake: Tensor):
        if self.steps == 0:
            return critic
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
