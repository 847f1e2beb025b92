"""Tricks that change the networks' layers: spectral normalisation (Miyato et al. 2018), minibatch
discrimination and virtual batch normalisation (Salimans et al. 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.errors import UserError
from gan_cli.nets.spectral import apply_spectral_norm
from gan_cli.nets.trick_layers import MinibatchDiscrimination, VirtualBatchNorm, reference_pass
from gan_cli.tricks.base import Trick, replace_module, score_layer


class SpectralNorm(Trick):
    """Every weight of the discriminators (and, with `generator: true`, of the generators) divided by its
    largest singular value, estimated by power iteration."""

    order = 60  # after the tricks that add layers, so that those are normalised too

    def __init__(self, generator: bool = False, n_power_iterations: int = 1) -> None:
        super().__init__()
        self.generator, self.n_power_iterations = generator, n_power_iterations

    def setup(self, model) -> None:
        networks = model.discriminators() + (model.generators() if self.generator else [])
        for network in networks:
            apply_spectral_norm(network, self.n_power_iterations)


class MinibatchScore(nn.Module):
    """D's last layer with minibatch discrimination before it: score = layer(f) + w . o(f), o being the
    closeness features of f to the rest of the batch. For a layer giving one score per example this is the
    paper's linear layer on [f, o(f)]."""

    def __init__(self, layer: nn.Module, in_features: int, num_kernels: int, kernel_dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.minibatch = MinibatchDiscrimination(in_features, num_kernels, kernel_dim)
        self.closeness_weight = nn.Linear(num_kernels, 1, bias=False)
        nn.init.normal_(self.closeness_weight.weight, 0.0, 0.02)  # not zero: spectral norm divides by its norm

    def forward(self, features: Tensor) -> Tensor:
        scores = self.layer(features)
        if scores.dim() > 2 and scores[0].numel() != 1:
            raise UserError("minibatch_discrimination needs a discriminator giving one score (or one vector of class "
                            f"scores) per image; this one gives a map of {tuple(scores.shape[1:])}.")
        closeness = self.closeness_weight(self.minibatch.closeness(features.flatten(1)))  # (N, 1)
        # one score: added to it; class logits (ssgan): added to each, which moves only the real/fake logit
        return scores + (closeness.view_as(scores) if scores[0].numel() == 1 else closeness)


class MinibatchDiscriminationTrick(Trick):
    """The minibatch-discrimination layer (num_kernels B, kernel_dim C) before each discriminator's score."""

    order = 10

    def __init__(self, num_kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim

    def setup(self, model) -> None:
        for network in model.discriminators():
            layer = score_layer(network)
            replace_module(network, layer, MinibatchScore(layer, self._in_features(model, layer),
                                                          self.num_kernels, self.kernel_dim))
            if getattr(network, "score_layer", None) is layer:
                network.score_layer = score_layer(network)

    def _in_features(self, model, layer: nn.Module) -> int:
        if isinstance(layer, nn.Linear):
            return layer.in_features
        if isinstance(layer, nn.Conv2d) and layer.out_channels == 1 and layer.padding == (0, 0):
            return layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]  # a DCGAN head: one score
        raise self.unsupported(model, "its discriminator ends in a convolution giving a map of scores (a PatchGAN), "
                                      "and minibatch discrimination needs one score per image.")


class _ReferenceBatch(nn.Module):
    """The generator's first input batch, kept (in the state_dict) as VBN's fixed reference batch."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[bool] = []  # per positional input: a tensor (True) or None

    def capture(self, args: tuple) -> None:
        self.kinds = [isinstance(a, Tensor) for a in args]
        for i, value in enumerate(args):
            if isinstance(value, Tensor):
                self.register_buffer(f"input_{i}", value.detach().clone())

    def inputs(self) -> tuple:
        return tuple(getattr(self, f"input_{i}") if kind else None for i, kind in enumerate(self.kinds))

    def get_extra_state(self) -> dict:
        return {"kinds": list(self.kinds)}

    def set_extra_state(self, state: dict) -> None:
        self.kinds = list(state["kinds"])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for key, value in state_dict.items():  # buffers made on the first batch: make room for them
            if key.startswith(f"{prefix}input_") and "." not in key[len(prefix):]:
                self.register_buffer(key[len(prefix):], torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class VirtualBatchNormTrick(Trick):
    """Every batch norm of the generators becomes virtual batch norm: each example is normalised with the
    statistics of a fixed reference batch (the generator's first input batch, kept) plus itself. Before each
    forward pass the reference batch goes through the generator to refresh the statistics, as in the paper."""

    order = 20

    def __init__(self) -> None:
        super().__init__()
        self.references = nn.ModuleList()

    def setup(self, model) -> None:
        norms_of = {id(g): [m for m in g.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
                    for g in model.generators()}
        if not any(norms_of.values()):
            raise self.unsupported(model, "virtual batch norm replaces the generator's batch norm, and this "
                                          "generator has none.")
        for generator in model.generators():
            norms = norms_of[id(generator)]
            if not norms:  # e.g. LAPGAN's fully connected coarsest level
                continue
            for norm in norms:
                virtual = VirtualBatchNorm(norm.num_features, norm.eps)
                if norm.affine:
                    virtual.weight.data.copy_(norm.weight.data)
                    virtual.bias.data.copy_(norm.bias.data)
                replace_module(generator, norm, virtual)
            reference = _ReferenceBatch()
            self.references.append(reference)
            generator.register_forward_pre_hook(_reference_hook(reference))


def _reference_hook(reference: _ReferenceBatch):
    """A forward pre-hook running the reference batch through the network first (a closure, so that copies
    of the network made by other tricks share it)."""
    busy = [False]

    def hook(network: nn.Module, args: tuple) -> None:
        if busy[0]:
            return
        if not reference.kinds:
            reference.capture(args)
        busy[0] = True
        try:
            with torch.no_grad(), reference_pass(network):
                network(*reference.inputs())
        finally:
            busy[0] = False

    return hook
