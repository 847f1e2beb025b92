"""Shared by the RBM tests (tests/test_rbm.py, tests/test_rbm_runner.py): the tiny model=rbm run and a snapshot
of an RBM's parameters."""

from __future__ import annotations

import torch

from gan_cli.models.classic.rbm_nets import RBMNet
from tests.conftest import QUICK

#: a tiny RBM on 8x8 synthetic images, quick sampling chains
TINY = [*QUICK, "model=rbm", "data.image_size=8", "model.hidden=16", "model.gibbs_steps=20", "model.monitor_size=32",
        "logger=none"]


def snapshot(net: RBMNet) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (net.W, net.b, net.c)]
