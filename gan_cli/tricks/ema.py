"""`ema`: an exponential moving average of each generator's weights (Karras et al.; Yazici et al. 2019),
which samples and is evaluated in place of the generator. torch's AveragedModel holds the average."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gan_cli.config.ranges import Decay
from gan_cli.tricks.base import Trick


def network_key(model: nn.Module, network: nn.Module) -> str:
    """The network's attribute path in the model ("generator", "G_A", "generators_1"), as a module key."""
    for name, module in model.named_modules():
        if module is network:
            return name.replace(".", "_")
    raise ValueError(f"{type(network).__name__} is not part of the model")


class EMA(Trick):
    """After each generator update: average <- decay * average + (1 - decay) * weights (the first update
    copies the weights). Buffers (batch-norm statistics) are copied from the generator."""

    order = 90  # last: it copies the generators as the other tricks left them

    def __init__(self, decay: Decay = 0.999) -> None:
        super().__init__()
        self.decay = decay
        self.averages = nn.ModuleDict()
        self._keys: dict[int, str] = {}  # id(generator) -> key of its average

    def setup(self, model) -> None:
        for generator in model.generators():
            average = AveragedModel(generator, use_buffers=False)  # a copy and its count; updated below
            average.requires_grad_(False)
            self._keys[id(generator)] = network_key(model, generator)
            self.averages[self._keys[id(generator)]] = average

    @torch.no_grad()
    def after_generator_step(self, model) -> None:
        for generator in model.generators():
            average = self.averages[self._keys[id(generator)]]
            # AveragedModel.update_parameters would read its count on the host; the same rule on the device
            weight = torch.where(average.n_averaged == 0, 1.0, 1.0 - self.decay)  # the first update copies
            averaged = list(average.module.parameters())
            torch._foreach_lerp_(averaged, [p.detach() for p in generator.parameters()], [weight] * len(averaged))
            average.n_averaged += 1
            for mine, theirs in zip(average.module.buffers(), generator.buffers()):
                mine.copy_(theirs)

    def inference_network(self, model, network: nn.Module) -> nn.Module:
        key = self._keys.get(id(network))
        return self.averages[key].module if key is not None else network
