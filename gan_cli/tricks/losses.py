"""Tricks that are loss terms: feature matching, historical averaging and one-sided label smoothing
(Salimans et al. 2016, "Improved Techniques for Training GANs") and the R1 penalty (Mescheder et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.losses.adversarial import MinimaxLoss
from gan_cli.losses.improved import HistoricalAverage, feature_matching_loss, one_sided_smoothing
from gan_cli.losses.penalties import r1_penalty
from gan_cli.tricks.base import Trick, score_layer


class FeatureMatching(Trick):
    """G minimises ||E f(x) - E f(G(z))||^2 instead of the objective's G loss, f being the input of D's
    last layer (the features D scores). The features are read with a forward hook on that layer."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: list[Tensor] = []  # the features of D's latest forward pass

    def setup(self, model) -> None:
        seen = self._seen

        def remember(module, args):  # a closure, not a method: network copies (unrolled) share it
            seen[:] = [args[0]]

        for discriminator in model.discriminators():
            score_layer(discriminator).register_forward_pre_hook(remember)

    def generator_loss(self, model, loss: Tensor, critic, fake: Tensor, real: Tensor) -> Tensor:
        fake_features = self._seen[0]  # from the critic's pass over `fake` that gave `loss`
        with torch.no_grad():
            critic(model.augment(real))
        return feature_matching_loss(self._seen[0].flatten(1), fake_features.flatten(1))


class HistoricalAveraging(Trick):
    """weight * ||theta - (1/t) sum_i theta_i||^2 added to each player's loss, theta_i being its parameters
    after each of its t updates so far."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight
        self.generator_averages: list[HistoricalAverage] = []
        self.discriminator_averages: list[HistoricalAverage] = []

    def setup(self, model) -> None:
        self.generator_averages = [HistoricalAverage() for _ in model.generators()]
        self.discriminator_averages = [HistoricalAverage() for _ in model.discriminators()]

    @staticmethod
    def _penalty(averages: list[HistoricalAverage], networks) -> Tensor:
        return sum(average.penalty(network) for average, network in zip(averages, networks))

    def discriminator_terms(self, model, terms, critic, real, fake, real_scores) -> None:
        terms["historical_average"] = self.weight * self._penalty(self.discriminator_averages, model.discriminators())

    def generator_loss(self, model, loss, critic, fake, real) -> Tensor:
        return loss + self.weight * self._penalty(self.generator_averages, model.generators())

    def after_discriminator_step(self, model) -> None:
        for average, network in zip(self.discriminator_averages, model.discriminators()):
            average.update(network)

    def after_generator_step(self, model) -> None:
        for average, network in zip(self.generator_averages, model.generators()):
            average.update(network)

    def get_extra_state(self) -> dict:
        return {"generators": [a.state_dict() for a in self.generator_averages],
                "discriminators": [a.state_dict() for a in self.discriminator_averages]}

    def set_extra_state(self, state: dict) -> None:
        for averages, saved in ((self.generator_averages, state["generators"]),
                                (self.discriminator_averages, state["discriminators"])):
            for average, values in zip(averages, saved):
                average.load_state_dict(values)


class LabelSmoothing(Trick):
    """One-sided label smoothing: D's target for real data is `real_label` (0.9) instead of 1; the
    generated data's target stays 0."""

    def __init__(self, real_label: float = 0.9) -> None:
        super().__init__()
        self.real_label = real_label

    def setup(self, model) -> None:
        if not isinstance(model.loss, MinimaxLoss):
            raise self.unsupported(model, f"label smoothing sets the targets of the cross-entropy objective, and "
                                          f"this run's loss is {type(model.loss).__name__}. Add loss=nonsaturating "
                                          "(or loss=minimax).")

    def discriminator_terms(self, model, terms, critic, real, fake, real_scores) -> None:
        terms["real"] = one_sided_smoothing(real_scores, self.real_label)


class R1(Trick):
    """(gamma / 2) * E ||grad_x D(x)||^2 on real images added to D's loss."""

    def __init__(self, gamma: float = 10.0) -> None:
        super().__init__()
        self.gamma = gamma

    def discriminator_terms(self, model, terms, critic, real, fake, real_scores) -> None:
        terms["r1"] = 0.5 * self.gamma * r1_penalty(critic, real)
