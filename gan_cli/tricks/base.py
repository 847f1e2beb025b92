"""The `Trick` interface: a small piece that changes how an adversarial model trains through the hook points
of gan_cli.models.adversarial.AdversarialModule, without touching the model's training step.

A trick overrides the one or two hooks it needs; every hook defaults to doing nothing. Tricks are
nn.Modules held in `model.tricks`, so whatever state they keep (moving averages, reference batches) is
in the model's state_dict and therefore in its checkpoints, and a resumed run continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from gan_cli.errors import UserError

if TYPE_CHECKING:
    from gan_cli.models.adversarial import AdversarialModule, Critic


class Trick(nn.Module):
    #: setup order: tricks that change the networks' layers first, then those that wrap or copy them
    order = 50

    def __init__(self) -> None:
        super().__init__()
        self.trick_name = type(self).__name__  # the name it was chosen by (tricks=[...]), set by attach_tricks

    # --- hooks (see AdversarialModule) ------------------------------------------------------------
    def setup(self, model: "AdversarialModule") -> None:
        """Once, after the model is built: change its networks, or refuse the model with `unsupported`."""

    def augment(self, images: Tensor) -> Tensor:
        """What the discriminator sees of a batch (real or generated)."""
        return images

    def discriminator_terms(self, model: "AdversarialModule", terms: dict[str, Tensor], critic: "Critic",
                            real: Tensor, fake: Tensor, real_scores: Tensor) -> None:
        """Add to or replace D's loss terms (`terms` is changed in place)."""

    def generator_critic(self, model: "AdversarialModule", critic: "Critic", real: Tensor, fake: Tensor) -> "Critic":
        """The critic G's adversarial term is computed against."""
        return critic

    def generator_loss(self, model: "AdversarialModule", loss: Tensor, critic: "Critic", fake: Tensor,
                       real: Tensor) -> Tensor:
        """G's adversarial term, given the objective's (`fake` as D saw it, with its graph)."""
        return loss

    def after_discriminator_step(self, model: "AdversarialModule") -> None:
        """After each update of the discriminators."""

    def after_generator_step(self, model: "AdversarialModule") -> None:
        """After each update of the generators."""

    def inference_network(self, model: "AdversarialModule", network: nn.Module) -> nn.Module:
        """The network that samples in place of generator `network`."""
        return network

    def logs(self, model: "AdversarialModule") -> dict[str, Tensor]:
        """Values to log on log steps (name -> tensor, logged as train/<name>), such as a statistic the trick
        keeps; called only on log steps, so reading them costs no host synchronisation in other steps."""
        return {}

    # --- helpers ----------------------------------------------------------------------------------
    def unsupported(self, model: nn.Module, why: str) -> UserError:
        """The error for a model this trick cannot work with."""
        return UserError(f"{model_name(model)} cannot take tricks=[{self.trick_name}]: {why}")


def model_name(model: nn.Module | type) -> str:
    """How the user chose the model (model=cyclegan), else its class (`model` is the model or its class)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return f"model={choice}"
    except ValueError:  # outside a Hydra run
        pass
    return f"model {(model if isinstance(model, type) else type(model)).__name__}"


def score_layer(network: nn.Module) -> nn.Module:
    """The discriminator's last layer, the one that turns its features into scores: the network's
    `score_layer` attribute if it names it, else its last linear or convolutional layer."""
    named = getattr(network, "score_layer", None)
    if isinstance(named, nn.Module):
        return named
    layers = [m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if not layers:
        raise ValueError(f"{type(network).__name__} has no linear or convolutional layer")
    return layers[-1]


def replace_module(network: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put `new` wherever `old` sits inside `network` (under every name that refers to it)."""
    found = False
    for name, module in list(network.named_modules(remove_duplicate=False)):
        for child_name, child in list(module.named_children()):
            if child is old:
                setattr(module, child_name, new)
                found = True
    if not found:
        raise ValueError(f"{type(old).__name__} is not part of {type(network).__name__}")
