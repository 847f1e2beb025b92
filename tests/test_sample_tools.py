"""gan-sample's tools: whole rows per label, walks between latent points (a grid or an animated GIF), truncated
latents; and slerp itself on hand cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_cli.commands.latent_walks import ANCHORS, latents, slerp, walk_points
from gan_cli.commands.sample import sample
from gan_cli.commands.train import train
from tests.conftest import QUICK, SMALL, compose_train
from tests.helpers import refusal

pytestmark = pytest.mark.usefixtures("one_thread")
TILE = 34  # a 32 px image and its 2 px padding in a grid


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    runs = {"dcgan": [*SMALL["dcgan"], "model=dcgan"], "cgan": [*SMALL["cgan"], "model=cgan"],
            "vae": ["model=vae", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]", "model.code_dim=4"],
            "rbm": ["model=rbm", "data.image_size=8", "model.hidden=16", "model.monitor_size=16"]}
    paths = {}
    for name, overrides in runs.items():
        run = tmp_path_factory.mktemp(name)
        train(compose_train(run, [*QUICK, "logger=none", "data.channels=1", *overrides]))
        paths[name] = run / "checkpoints" / "last.ckpt"
    return paths


def draw(make_cfg, ckpt: Path, tmp_path: Path, *settings: str) -> Path:
    cfg = make_cfg(f"ckpt_path={ckpt}", *settings, config_name="sample")
    cfg.output = str(tmp_path / cfg.output) if not cfg.output.endswith("/") else str(tmp_path / cfg.output) + "/"
    return sample(cfg)


def test_slerp_on_hand_cases():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(slerp(a, b, torch.tensor([[0.5]])), torch.tensor([[1, 1]]) / math.sqrt(2))
    assert torch.allclose(slerp(a, b, torch.tensor([[0.0]])), a)
    assert torch.allclose(slerp(a, b, torch.tensor([[1.0]])), b)
    z = torch.randn(2, 64)
    z[1] *= z[0].norm() / z[1].norm()  # equal norms: every point of the walk keeps it
    path = walk_points(z[:1], z[1:], 9)
    assert torch.allclose(path.norm(dim=1), z[0].norm().expand(9), rtol=1e-5)
    assert torch.allclose(path[0], z[0]) and torch.allclose(path[-1], z[1], atol=1e-6)
    same = slerp(a, 2 * a, torch.tensor([[0.5]]))  # parallel: the straight line
    assert torch.allclose(same, 1.5 * a)


def test_a_conditional_grid_has_a_whole_row_per_label(make_cfg, tmp_path, checkpoints):
    grid = draw(make_cfg, checkpoints["cgan"], tmp_path, "num_samples=64", "output=grid.png")
    with Image.open(grid) as image:
        assert image.size == (7 * TILE + 2, 10 * TILE + 2)  # 64 asked, 10 labels: 7 a row, 70 drawn


def test_interpolate_draws_a_walk_a_row(make_cfg, tmp_path, checkpoints):
    grid = draw(make_cfg, checkpoints["dcgan"], tmp_path, "num_samples=32", "interpolate=8", "output=walks.png")
    with Image.open(grid) as image:
        assert image.size == (8 * TILE + 2, 4 * TILE + 2)
    labelled = draw(make_cfg, checkpoints["cgan"], tmp_path, "num_samples=20", "interpolate=5", "label=3",
                    "output=threes.png")
    assert labelled.is_file()


def test_interpolate_to_a_gif_animates_closed_loops(make_cfg, tmp_path, checkpoints):
    gif = draw(make_cfg, checkpoints["vae"], tmp_path, "num_samples=20", "interpolate=5", "output=walk.gif")
    with Image.open(gif) as image:
        assert image.n_frames == ANCHORS * 5 and image.info.get("loop") == 0
        assert image.size == (2 * 34 + 2, 2 * 34 + 2)  # 4 walks side by side, 2 a row


def test_truncation_zero_draws_the_centre_and_psi_bounds_every_coordinate(make_cfg, tmp_path, checkpoints):
    from gan_cli.assembly import load_model

    model, _ = load_model(checkpoints["dcgan"])
    assert torch.count_nonzero(latents(model, 8, 0.0)) == 0
    z = latents(model, 2000, 0.5)
    assert z.abs().max() <= 0.5 and z.std() < 0.35 and z.abs().min() < 0.01
    folder = draw(make_cfg, checkpoints["dcgan"], tmp_path, "num_samples=3", "truncation=0", "output=centre/")
    pixels = [torch.tensor(list(Image.open(p).getdata())) for p in sorted(folder.iterdir())]
    assert len(pixels) == 3 and all(torch.equal(pixels[0], p) for p in pixels[1:])


@pytest.mark.parametrize("settings, named", [
    (["interpolate=4"], "model=gan, dcgan, cgan, vae"),  # an RBM draws by Gibbs chains
    (["interpolate=1"], "2 or more"),
    (["truncation=-1"], "psi >= 0"),
    (["output=x.gif"], "add interpolate=K"),
    (["interpolate=4", "output=x.mp4"], "output=NAME.gif"),
])
def test_bad_sampling_settings_are_named(make_cfg, tmp_path, checkpoints, settings, named):
    ckpt = checkpoints["rbm" if settings == ["interpolate=4"] else "dcgan"]
    error = refusal(lambda: draw(make_cfg, ckpt, tmp_path, *settings))
    assert named in str(error)
