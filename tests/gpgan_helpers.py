"""The GP-GAN tests' tiny blending folder and quick training run, shared by tests/test_gpgan.py,
tests/test_blending_pairs.py and tests/test_trick_matrix.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OFFSET = 20  # image k of a scene is its base plus k * OFFSET grey levels


def write_scenes(root: Path, scenes: int = 4, per_scene: int = 3, size: tuple[int, int] = (24, 30)) -> Path:
    """A tiny blending folder: root/scene_<s>/<k>.png, image k being the scene's random base + k * OFFSET (the
    same view under brighter light), so two crops of one scene differ by a constant exactly when they align."""
    rng = np.random.default_rng(0)
    for s in range(scenes):
        (root / f"scene_{s}").mkdir(parents=True)
        base = rng.integers(0, 256 - OFFSET * per_scene, (*size, 3))
        for k in range(per_scene):
            Image.fromarray((base + OFFSET * k).astype(np.uint8)).save(root / f"scene_{s}" / f"{k}.png")
    return root


def gpgan_quick(root: Path) -> list[str]:
    """A quick CPU run of model=gpgan on `write_scenes`' folder: 16 px, tiny networks, 12 batches; the critic's
    boosted phase shortened so that G is updated in it."""
    return ["model=gpgan", f"data.root={root}", "data.image_size=16", "data.load_size=20", "data.batch_size=4",
            "data.num_workers=0", "data.dataset.train_pairs=48", "model.generator.nef=4", "model.generator.ngf=4",
            "model.generator.bottleneck=8", "model.discriminator.ndf=4", "model.critic_boost=2",
            "model.critic_boost_first=1", "model.num_examples=3", "trainer=cpu", "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1"]
