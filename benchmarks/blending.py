#!/usr/bin/env python
"""Blending check for GP-GAN (issue 8): does gan-blend bring a pasted region closer to the truth than plain
Poisson blending and the raw copy-and-paste composite?

    OMP_NUM_THREADS=1 python benchmarks/blending.py                 # run time: RESULTS.md#make-bench-blending
    OMP_NUM_THREADS=1 python benchmarks/blending.py --quick         # smoke run: checks the script, not the model
    python benchmarks/blending.py --batches 2000 model.generator.nef=32 ...   (more gan-train overrides)

This is a benchmark, not a test: it always exits 0 and prints its figures.

Data (synthetic, offline; no real photos are involved, so the figures say how the method behaves on scenes
whose truth is known, not how it looks on photographs). The Transient Attributes Database that the authors
train on (webcams filming one view under changing light and weather) cannot be downloaded here, so this script
renders its own "webcams": a scene is a fixed reflectance image (a sky gradient above a horizon, ground,
15-25 sharp-edged buildings and trees of random colours, fine sinusoidal texture), defined in continuous
coordinates so that it renders at any size; a condition relights it: a brightness (0.35-1.15), a colour
temperature (warm to cool gains), a linear shading ramp across the view (up to +-30%), and fog mixed in
(0-35%, grey-blue). Each image is the scene's reflectance times its light, fog added, in 8 bits.

- Training: 80 scenes x 10 conditions at 96 x 128 px, written as PNGs in the blending_folder layout, and
  `gan-train model=gpgan data=blending_folder data.root=...` run through gan-train's own path (composed from
  the packaged conf/, built by gan_cli.commands.train). The paper's objective and optimisers are kept (lambda 0.999,
  WGAN critic with weight clipping and 5 critic updates per G update, Adam 2e-4 / 2e-3, beta1 0.5; the
  authors' 64 px centre-square pairs); scaled down to suit one CPU thread, as printed: the network widths
  (16 instead of 64, a 1000-d bottleneck instead of 4000), batch 32, a fixed number of batches, and no
  boosted critic phases (critic_boost=null: the authors' 100 critic updates per G update for the first 25 G
  updates alone would take most of the run).
- Test: 12 held-out scenes (other seeds, never trained on) at 192 x 256 px; for each, composites of one
  condition pasted into another: 4 with the training pairs' centre square (half the side), 4 with random
  rectangles (20-50% of each side, anywhere). The truth is the destination image itself: the scene is the
  same, so a perfect blend relights the pasted region to the destination's light.

Methods, all at 192 x 256 through the code gan-blend runs (gan_cli.commands.blend.blend_images): the raw
composite; plain Poisson blending (gan-blend without ckpt_path); GP-GAN (gan-blend with the trained
checkpoint: the Blending GAN's 64 px blend, then the Gaussian-Poisson equation on the pyramid, beta 1, sigma
0.5); and two references for the GAN's part: the Gaussian-Poisson equation with the composite itself (shrunk
to 64 px) as its colours instead of the GAN's blend (no GAN), and with the truth shrunk to 64 px (what a perfect
Blending GAN would give: the best GP-GAN can do with these solver settings).

Measures, in [0, 1] pixel units, against the truth: RMSE over the whole image, RMSE inside the pasted region,
and a gradient-domain error, the RMSE of the horizontal and vertical forward differences over the whole
image (the seam's jump and wrongly scaled texture both count). Mean over the composites, and for GP-GAN the
share of composites where it beats Poisson blending. The GAN's own 64 px result is also scored against the
64 px truth on held-out pairs from the data module (its training objective's L2), next to the composite's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_cli.blending import gaussian_poisson
from gan_cli.commands.blend import blend_images, composite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (same folder)

TRAIN_SIZE, TEST_SIZE = (96, 128), (192, 256)
SCALED_DOWN = ["model.generator.nef=16", "model.generator.ngf=16", "model.generator.bottleneck=1000",
               "model.discriminator.ndf=16", "model.critic_boost=null", "data.batch_size=32"]


# --- synthetic webcams -----------------------------------------------------------------------------------
def scene(seed: int) -> dict:
    """A random scene: everything needed to render its reflectance at any size."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(rng.integers(15, 26)):
        kind = "box" if rng.random() < 0.6 else "disk"
        centre = (rng.uniform(0, 1), rng.uniform(0.3, 1.0))
        half = (rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.2))
        shapes.append((kind, centre, half, rng.uniform(0.1, 0.95, 3)))
    horizon, sky, ground = rng.uniform(0.3, 0.55), rng.uniform(0.5, 1.0, (2, 3)), rng.uniform(0.15, 0.7, 3)
    texture = [(rng.uniform(10, 45, 2) * rng.choice([-1, 1], 2), rng.uniform(0, 2 * np.pi), rng.uniform(0.005, 0.02))
               for _ in range(12)]
    return {"horizon": horizon, "sky": sky, "ground": ground, "shapes": shapes, "texture": texture}


def reflectance(spec: dict, size: tuple[int, int]) -> np.ndarray:
    """The scene's reflectance, 3 x H x W in [0, 1], rendered at `size` (pixel centres in [0, 1]^2)."""
    height, width = size
    v, u = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
    t = np.clip(v / spec["horizon"], 0, 1)[None]
    top, bottom = (colour[:, None, None] for colour in spec["sky"])
    image = np.where(v[None] < spec["horizon"], (1 - t) * top + t * bottom, spec["ground"][:, None, None])
    for kind, (cu, cv), (hu, hv), colour in spec["shapes"]:
        if kind == "box":
            inside = (abs(u - cu) < hu) & (abs(v - cv) < hv)
        else:
            inside = ((u - cu) / hu) ** 2 + ((v - cv) / hv) ** 2 < 1
        image = np.where(inside[None], colour[:, None, None], image)
    texture = sum(a * np.sin(2 * np.pi * (f[0] * u + f[1] * v) + phase) for f, phase, a in spec["texture"])
    return np.clip(image + texture[None], 0, 1)


def lighting(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    warmth = rng.uniform(-1, 1)
    return {"gain": rng.uniform(0.35, 1.15) * (1 + warmth * np.array([0.25, 0.0, -0.25])),
            "ramp": rng.uniform(0, 0.3), "angle": rng.uniform(0, 2 * np.pi), "fog": rng.uniform(0, 0.35)}


def render(spec: dict, light: dict, size: tuple[int, int]) -> np.ndarray:
    """The scene under one condition, 3 x H x W in [0, 1], quantised to 8 bits as a camera would."""
    height, width = size
    v, u = np.meshgrid((np.arange(height) + 0.5) / height - 0.5, (np.arange(width) + 0.5) / width - 0.5, indexing="ij")
    shade = 1 + 2 * light["ramp"] * (np.cos(light["angle"]) * u + np.sin(light["angle"]) * v)
    lit = reflectance(spec, size) * light["gain"][:, None, None] * shade[None]
    image = (1 - light["fog"]) * lit + light["fog"] * np.array([0.7, 0.75, 0.8])[:, None, None]
    return np.round(np.clip(image, 0, 1) * 255) / 255


def write_training_scenes(root: Path, scenes: int, conditions: int) -> None:
    for s in range(scenes):
        folder = root / f"webcam_{s:03d}"
        folder.mkdir(parents=True)
        spec = scene(s)
        for c in range(conditions):
            pixels = (render(spec, lighting(1000 * s + c), TRAIN_SIZE) * 255).round().astype(np.uint8)
            Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / f"{c:02d}.png")


def test_composites(scenes: int, per_kind: int, seed: int = 12345) -> list[dict]:
    """Held-out (src, dst, mask) triples at TEST_SIZE: per scene, `per_kind` centre squares and random rectangles."""
    rng = np.random.default_rng(seed)
    height, width = TEST_SIZE
    cases = []
    for s in range(scenes):
        spec = scene(100000 + s)
        for kind in ("centre", "random"):
            for _ in range(per_kind):
                a, b = rng.choice(10**6, 2, replace=False)
                src, dst = render(spec, lighting(int(a)), TEST_SIZE), render(spec, lighting(int(b)), TEST_SIZE)
                mask = np.zeros(TEST_SIZE, dtype=bool)
                if kind == "centre":
                    side_h, side_w = height // 2, width // 2  # the training pairs' square, at the image's aspect
                    top, left = height // 2 - side_h // 2, width // 2 - side_w // 2
                else:
                    side_h, side_w = int(height * rng.uniform(0.2, 0.5)), int(width * rng.uniform(0.2, 0.5))
                    top, left = rng.integers(0, height - side_h), rng.integers(0, width - side_w)
                mask[top:top + side_h, left:left + side_w] = True
                cases.append({"kind": kind, "src": src, "dst": dst, "mask": mask})
    return cases


# --- measures --------------------------------------------------------------------------------------------
def rmse(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a - b) ** 2
    return float(np.sqrt(diff[:, where].mean() if where is not None else diff.mean()))


def gradient_rmse(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float(np.sqrt((np.concatenate([np.diff(d, axis=-1).ravel(), np.diff(d, axis=-2).ravel()]) ** 2).mean()))


def scores(result: np.ndarray, case: dict) -> dict[str, float]:
    truth = case["dst"]
    return {"rmse": rmse(result, truth), "rmse_in": rmse(result, truth, case["mask"]),
            "grad": gradient_rmse(result, truth)}


# --- the run ---------------------------------------------------------------------------------------------
def train_blending_gan(root: Path, out: Path, batches: int, extra: list[str]) -> tuple[Path, float, list[str]]:
    from gan_cli.commands.train import train

    pairs = batches * 32
    overrides = ["model=gpgan", f"data.root={root}", *SCALED_DOWN, f"data.dataset.train_pairs={pairs}",
                 "data.dataset.test_scenes=0.1", "data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks=checkpoints",
                 "logger=csv", *extra]
    cfg = compose_train(overrides, out)
    start = time.perf_counter()
    train(cfg)
    return out / "checkpoints" / "last.ckpt", time.perf_counter() - start, overrides


def held_out_low_res(model, root: Path) -> tuple[float, float]:
    """RMSE (in [0, 1] units) of the GAN's 64 px blends and of the composites to the clean 64 px images, on the
    data module's held-out scenes (the 10% the training never saw)."""
    from hydra.utils import instantiate

    cfg = compose_train(["model=gpgan", f"data.root={root}", "data.dataset.test_scenes=0.1", "data.num_workers=0"],
                        Path("unused"))
    datamodule = instantiate(cfg.data)
    batch = next(iter(datamodule.test_dataloader()))
    composites, targets = datamodule.denormalize(batch["composite"]), datamodule.denormalize(batch["target"])
    blends = model.low_res_blend(composites)
    return (float(((blends - targets) ** 2).mean().sqrt()), float(((composites - targets) ** 2).mean().sqrt()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=1500, help="training batches of 32 (one epoch)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-blending"), help="the training run's folder")
    parser.add_argument("--quick", action="store_true", help="a few batches and composites: checks the script only")
    parser.add_argument("overrides", nargs="*", help="more gan-train overrides for the Blending GAN")
    args = parser.parse_args()
    quiet_frameworks()
    from gan_cli.assembly import load_model

    scenes, conditions = (10, 4) if args.quick else (80, 10)
    batches = 20 if args.quick else args.batches
    test_scenes, per_kind = (2, 1) if args.quick else (12, 4)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "webcams"
        write_training_scenes(root, scenes, conditions)
        print(f"training data: {scenes} synthetic scenes x {conditions} conditions at "
              f"{TRAIN_SIZE[1]}x{TRAIN_SIZE[0]} px", flush=True)
        ckpt, seconds, overrides = train_blending_gan(root, args.out, batches, args.overrides)
        print(f"gan-train {' '.join(o for o in overrides if not o.startswith('data.root'))}\n"
              f"  {batches} batches of 32 in {seconds:.0f} s; checkpoint {ckpt}", flush=True)
        model, _ = load_model(ckpt)
        gan_rmse, composite_rmse = held_out_low_res(model, root)
    print(f"\nBlending GAN at 64 px on held-out scenes' pairs: RMSE to the clean image {gan_rmse:.4f} "
          f"(the composite: {composite_rmse:.4f})")

    cases = test_composites(test_scenes, per_kind)
    methods = {
        "composite (copy-paste)": lambda c: composite(c["src"], c["dst"], c["mask"]),
        "Poisson (gan-blend, no ckpt)": lambda c: blend_images(c["src"], c["dst"], c["mask"]),
        "GP-GAN (gan-blend ckpt_path=...)": lambda c: blend_images(c["src"], c["dst"], c["mask"], model),
        "Gaussian-Poisson, composite colours": lambda c: gaussian_poisson(
            c["src"], c["dst"], c["mask"], _shrunk(composite(c["src"], c["dst"], c["mask"]))),
        "Gaussian-Poisson, the truth's colours": lambda c: gaussian_poisson(c["src"], c["dst"], c["mask"],
                                                                            _shrunk(c["dst"])),
    }
    start = time.perf_counter()
    results = {name: [scores(method(case), case) for case in cases] for name, method in methods.items()}
    print(f"\n{len(cases)} held-out composites at {TEST_SIZE[1]}x{TEST_SIZE[0]} px ({test_scenes} unseen scenes; "
          f"blended in {time.perf_counter() - start:.0f} s). Errors to the truth (the destination), [0, 1] units:")
    for kind in ("centre", "random", None):
        chosen = [i for i, c in enumerate(cases) if kind is None or c["kind"] == kind]
        label = {"centre": "centre squares (as trained)", "random": "random rectangles", None: "all"}[kind]
        print(f"\n  {label} ({len(chosen)}):\n  {'method':38s} {'RMSE':>8s} {'RMSE in mask':>13s} "
              f"{'gradient RMSE':>14s}")
        for name, rows in results.items():
            mean = {key: statistics.fmean(rows[i][key] for i in chosen) for key in ("rmse", "rmse_in", "grad")}
            print(f"  {name:38s} {mean['rmse']:8.4f} {mean['rmse_in']:13.4f} {mean['grad']:14.4f}")
        gp, poisson = results["GP-GAN (gan-blend ckpt_path=...)"], results["Poisson (gan-blend, no ckpt)"]
        wins = {key: sum(gp[i][key] < poisson[i][key] for i in chosen) for key in ("rmse", "grad")}
        print(f"  GP-GAN below Poisson: RMSE in {wins['rmse']}/{len(chosen)}, gradient RMSE in "
              f"{wins['grad']}/{len(chosen)} composites")


def _shrunk(image: np.ndarray) -> np.ndarray:
    """An image shrunk to the Blending GAN's 64 px: the colours of the two Gaussian-Poisson references."""
    planes = torch.from_numpy(image)[None]
    return torch.nn.functional.interpolate(planes, size=(64, 64), mode="bilinear", antialias=True)[0].numpy()


if __name__ == "__main__":
    main()
