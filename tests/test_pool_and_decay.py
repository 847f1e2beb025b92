"""The training state of pix2pix and CycleGAN beside their networks, faithful to
junyanz/pytorch-CycleGAN-and-pix2pix: the image pool of past fakes (filling, passing through at size 0,
returning a past image half of the time, its state through a checkpoint) and the linear learning-rate decay
(its factors, driving LambdaLR, its state through a checkpoint)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from gan_cli.nets import ImagePool, LinearDecay

pytestmark = pytest.mark.usefixtures("one_thread")


def roundtrip(obj):
    """obj through torch.save / torch.load(weights_only=True), as a checkpoint would carry it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --------------------------------------------------------------------------------------------------------
# image pool


def batch(value: float, n: int = 1) -> torch.Tensor:
    """n 1x2x2 images filled with value, value+1, ..."""
    return torch.arange(n, dtype=torch.float32).add(value).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def ids(images: torch.Tensor) -> list[float]:
    return images[:, 0, 0, 0].tolist()


def test_pool_returns_its_inputs_while_filling():
    pool = ImagePool(5)
    assert len(pool) == 0
    first = batch(0, 3).requires_grad_()
    out = pool.query(first)
    assert torch.equal(out, first) and not out.requires_grad
    assert torch.equal(pool.query(batch(3, 2)), batch(3, 2))
    assert len(pool) == 5
    assert sorted(ids(pool.state_dict()["images"])) == [0, 1, 2, 3, 4]


def test_pool_of_size_zero_passes_through():
    pool = ImagePool(0)
    images = batch(0, 4).requires_grad_()
    assert pool.query(images) is images
    assert len(pool) == 0


def test_full_pool_returns_past_images_half_of_the_time():
    torch.manual_seed(123)
    pool = ImagePool(10)
    pool.query(batch(0, 10))
    past = 0
    queries = 400
    for step in range(queries):
        new = 100.0 + step
        before = set(ids(pool.state_dict()["images"]))
        (returned,) = ids(pool.query(batch(new)))
        after = ids(pool.state_dict()["images"])
        assert len(pool) == 10
        if returned == new:
            assert set(after) == before  # the new image is used, the pool is unchanged
        else:
            past += 1
            assert returned in before  # a past image...
            assert returned not in after and new in after  # ...whose place the new image took
            assert set(after) == before - {returned} | {new}
    assert 0.4 < past / queries < 0.6


def test_pool_state_dict_round_trip_reproduces_the_following_queries():
    torch.manual_seed(0)
    pool = ImagePool(4)
    pool.query(batch(0, 3))
    state = roundtrip(pool.state_dict())
    rng = torch.get_rng_state()
    follow = [pool.query(batch(10.0 * k, 2)) for k in range(1, 8)]

    resumed = ImagePool(4)
    resumed.load_state_dict(state)
    assert len(resumed) == 3
    torch.set_rng_state(rng)
    for k, expected in enumerate(follow, start=1):
        assert torch.equal(resumed.query(batch(10.0 * k, 2)), expected)
    assert torch.equal(resumed.state_dict()["images"], pool.state_dict()["images"])


def test_empty_pool_state_dict():
    state = roundtrip(ImagePool(3).state_dict())
    assert state["images"].numel() == 0
    pool = ImagePool(3)
    pool.load_state_dict(state)
    assert len(pool) == 0
    with pytest.raises(ValueError, match="pool_size=1"):
        ImagePool(1).load_state_dict({"images": batch(0, 2)})


# --------------------------------------------------------------------------------------------------------
# linear decay of the learning rate


def test_linear_decay_factors():
    decay = LinearDecay(3, 2)
    assert [decay(e) for e in range(5)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3])
    assert decay(5) == pytest.approx(0)  # reached right after the last epoch
    assert [LinearDecay(0, 1)(e) for e in range(2)] == pytest.approx([1 / 2, 0])
    for bad in ((-1, 2), (3, -1)):
        with pytest.raises(ValueError):
            LinearDecay(*bad)


def test_linear_decay_drives_lambda_lr_and_round_trips():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(3, 2))
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.3, 0.3, 0.3, 0.2, 0.1])

    state = roundtrip(scheduler.state_dict())
    assert state["lr_lambdas"] == [{"constant_epochs": 3, "decay_epochs": 2}]
    fresh_optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.3)
    fresh = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, LinearDecay(100, 100))
    fresh.load_state_dict(state)
    assert (fresh.lr_lambdas[0].constant_epochs, fresh.lr_lambdas[0].decay_epochs) == (3, 2)
    assert fresh.last_epoch == 5
