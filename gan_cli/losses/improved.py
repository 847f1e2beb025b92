"""Three of the techniques of Salimans et al. 2016, "Improved Techniques for Training GANs" (section 3):
feature matching, historical averaging and one-sided label smoothing. Plain functions and one small
class: the training loop decides when to call them and with what weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """||E_x f(x) - E_z f(G(z))||_2^2 (section 3.1), a generator loss.

    Instead of maximising D's output, G matches the batch mean of an intermediate layer f of D on real
    data, which gives G a fixed target for the current D and so keeps it from over-training on D. The
    real side is a target: it is detached, so the loss trains G only. Features of any shape are
    flattened per sample; both sides need the same per-sample size, not the same batch size.
    """
    real, fake = real_features.flatten(1), fake_features.flatten(1)
    if real.size(1) != fake.size(1):
        raise ValueError(f"real and fake features differ in size per sample: {tuple(real_features.shape)} "
                         f"vs {tuple(fake_features.shape)}")
    return ((real.detach().mean(0) - fake.mean(0)) ** 2).sum()


def one_sided_smoothing(real_scores: Tensor, real_label: float = 0.9) -> Tensor:
    """-E[a log D(x) + (1 - a) log(1 - D(x))] with a = `real_label` (section 3.4), D's loss on real data.

    Smoothing the real target from 1 to a < 1 keeps D from growing overconfident logits. Only the real
    side is smoothed: smoothing the fake target too would leave D's optimum proportional to p_g where p_data
    is small, so D could not push G's samples out of regions without data. `real_scores` are logits.
    """
    return F.binary_cross_entropy_with_logits(real_scores, torch.full_like(real_scores, real_label))


class HistoricalAverage:
    """The running mean (1/t) sum_{i=1..t} theta_i of a module's parameters, and the penalty
    sum_params ||theta - mean||^2 (section 3.3).

    Pulling each player towards the average of its own past is inspired by fictitious play; the paper
    finds it reaches equilibria of low-dimensional games where plain gradient descent goes into orbits.
    t counts `update` calls; whether `update` runs before or after `penalty` in a step is the caller's
    choice (the paper's mean is over the past values only, i.e. penalty first). The average is kept per
    parameter name, as tensors of the parameter's dtype on its device, and without gradient history.
    """

    def __init__(self) -> None:
        self.count = 0
        self.average: dict[str, Tensor] = {}

    def update(self, module: nn.Module) -> None:
        """Fold the current parameter values into the mean: mean += (theta - mean) / t."""
        self.count += 1
        with torch.no_grad():
            for name, param in module.named_parameters():
                if self.count == 1:
                    self.average[name] = param.detach().clone()
                else:
                    mean = self._mean_like(name, param)
                    mean.add_((param.detach() - mean) / self.count)

    def penalty(self, module: nn.Module) -> Tensor:
        """sum over parameters of ||theta - mean||^2, differentiable in theta; 0 before the first update."""
        params = list(module.named_parameters())
        if not params:
            return torch.zeros(())
        if self.count == 0:
            return params[0][1].new_zeros(())
        return torch.stack([((param - self._mean_like(name, param)) ** 2).sum() for name, param in params]).sum()

    def state_dict(self) -> dict[str, int | dict[str, Tensor]]:
        """Plain tensors and an int: safe for torch.load(weights_only=True)."""
        return {"count": self.count, "average": {name: mean.clone() for name, mean in self.average.items()}}

    def load_state_dict(self, state: dict[str, int | dict[str, Tensor]]) -> None:
        self.count = int(state["count"])
        self.average = {name: mean.clone() for name, mean in state["average"].items()}

    def _mean_like(self, name: str, param: Tensor) -> Tensor:
        """The mean of `name`, moved (once) to the parameter's device and dtype, e.g. after a resume."""
        if name not in self.average:
            raise KeyError(f"HistoricalAverage has no mean for parameter {name!r}: was update() called "
                           "with a different module?")
        mean = self.average[name]
        if mean.device != param.device or mean.dtype != param.dtype:
            mean = self.average[name] = mean.to(device=param.device, dtype=param.dtype)
        return mean
