"""Learning-rate schedules for torch.optim.lr_scheduler.LambdaLR.

LinearDecay is the 'linear' policy of junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py,
get_scheduler) with epoch_count=1: CycleGAN trains 100 epochs at the initial rate, then 100 decaying.
"""

from __future__ import annotations

import operator


class LinearDecay:
    """factor(epoch) = 1 - max(0, epoch + 1 - constant_epochs) / (decay_epochs + 1), epoch counted from 0.

    The rate is constant for `constant_epochs` epochs, then falls linearly; the last of the `decay_epochs`
    epochs trains at 1/(decay_epochs + 1) of it, and it would reach 0 right after. A class with plain int
    attributes (not a lambda) so that LambdaLR.state_dict(), which saves its __dict__, holds only ints.
    """

    def __init__(self, constant_epochs: int, decay_epochs: int) -> None:
        # operator.index accepts ints (and numpy ints) but rejects floats and strings
        self.constant_epochs = operator.index(constant_epochs)
        self.decay_epochs = operator.index(decay_epochs)
        if self.constant_epochs < 0 or self.decay_epochs < 0:
            raise ValueError(f"constant_epochs and decay_epochs must be >= 0 "
                             f"(got {self.constant_epochs} and {self.decay_epochs})")

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - self.constant_epochs) / (self.decay_epochs + 1)

    def __repr__(self) -> str:
        return f"LinearDecay(constant_epochs={self.constant_epochs}, decay_epochs={self.decay_epochs})"
