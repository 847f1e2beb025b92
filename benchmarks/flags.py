"""make bench-flags: the lecture's world-flags experiment on the 256 real flags (data=flags).

A VAE (experiment=flags_vae) and a DCGAN (experiment=flags_dcgan) train on the same flags with the same batch and
epochs; then the DCGAN again with tricks against mode collapse. The lecture reported that the VAE gives
interpretable (blurry) fakes and the DCGAN collapses onto tricolours. Here the collapse is measured: 256 samples of
each model against the 256 real flags, in a feature space where flags that look alike are near (each image
averaged to 8x8 RGB), with

- recall and coverage (Kynkaanniemi et al. 2019, Naeem et al. 2020; the `prdc` package, k = 5): how much of the
  real flags the samples reach (a collapsed generator keeps its precision and loses these);
- precision and density: how much of the samples looks like real flags;
- distinct flags: how many different real flags are the nearest of some sample (256 would be every flag), and the
  share of the samples on the single most chosen one.

The sample grids go to docs/flags_<model>.png (the README shows them). On the CPU the runs are 32 px, 100 epochs
(minutes each); --size 64 --epochs 200 is the lecture's setting.

    python benchmarks/flags.py [--size 32] [--epochs 100] [--only vae dcgan ...] [--out outputs/bench-flags] [--quick]
        [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (same folder)

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: the runs: name -> overrides (the same data, batch and epochs for all)
RUNS = {
    "vae": ["experiment=flags_vae"],
    "dcgan": ["experiment=flags_dcgan"],
    "dcgan_minibatch": ["experiment=flags_dcgan", "tricks=[minibatch_discrimination]"],
    "dcgan_diffaugment": ["experiment=flags_dcgan", "tricks=[diffaugment]"],
    "dcgan_ada": ["experiment=flags_dcgan", "tricks=[ada]"],
}
SAMPLES = 256


def features(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> 8x8 RGB averages (192 numbers): near for flags of the same colours in the same places."""
    return F.adaptive_avg_pool2d(images.float(), 8).flatten(1)


def collapse_scores(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    from gan_cli.metrics.scores import precision_recall_density_coverage

    scores = precision_recall_density_coverage(real, fake)
    nearest = torch.cdist(fake, real).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=len(real))
    scores["distinct_flags"] = int((counts > 0).sum())
    scores["top_flag_share"] = float(counts.max()) / len(fake)
    return scores


def train_run(name: str, overrides: list[str], out: Path, quick: bool) -> tuple[Path, float]:
    from gan_cli.commands.train import train

    extra = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"] if quick else []
    cfg = compose_train([*overrides, "logger=none", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", *extra], out / name)
    start = time.perf_counter()
    train(cfg)
    return out / name / "checkpoints" / "last.ckpt", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image size (the lecture's: 64)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of every run (the lecture's: 200)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-flags"))
    parser.add_argument("--quick", action="store_true", help="2 batches a run: checks the script, not the models")
    parser.add_argument("--grids", type=Path, default=DOCS, help="where the sample grids go (default: docs/)")
    parser.add_argument("--only", nargs="+", default=list(RUNS), choices=list(RUNS), help="runs to make")
    parser.add_argument("overrides", nargs="*", help="gan-train overrides for every run, e.g. engine=fast")
    args = parser.parse_args()
    quiet_frameworks()
    from hydra.utils import instantiate

    from gan_cli.assembly import load_model
    from gan_cli.visuals import to_grid

    common = [f"data.image_size={args.size}", f"trainer.max_epochs={args.epochs}", *args.overrides]
    datamodule = instantiate(compose_train(["data=flags", *common[:1]], args.out / "data").data)
    flags = datamodule.build("train")
    real = datamodule.denormalize(torch.stack([flags[i]["image"] for i in range(len(flags))])).clamp(0, 1)
    print(f"{len(real)} real flags at {args.size} px; {args.epochs} epochs of batch 32 per run; "
          f"{torch.get_num_threads()} threads\n", flush=True)
    rows = {}
    for name in args.only:
        ckpt, seconds = train_run(name, [*RUNS[name], *common], args.out, args.quick)
        model, config = load_model(ckpt)
        torch.manual_seed(0)
        samples = model.sample(SAMPLES)
        rows[name] = collapse_scores(features(real), features(datamodule.denormalize(samples).clamp(0, 1)))
        rows[name]["seconds"] = seconds
        args.grids.mkdir(parents=True, exist_ok=True)
        save_image(to_grid(samples[:64], 8, config["data"]["mean"], config["data"]["std"]),
                   args.grids / f"flags_{name}.png")
        print(f"{name} trained in {seconds:.0f} s", flush=True)
    keys = ("precision", "recall", "density", "coverage", "distinct_flags", "top_flag_share", "seconds")
    print(f"\n{'':<20}" + "".join(f"{k:>16}" for k in keys))
    for name, row in rows.items():
        print(f"{name:<20}" + "".join(f"{row[k]:>16.3f}" if isinstance(row[k], float) else f"{row[k]:>16}"
                                       for k in keys))
    print(f"\n{SAMPLES} samples per model against the {len(real)} real flags, in 8x8 RGB averages; recall/coverage: "
          f"share of the real flags reached; distinct_flags: real flags that are the nearest of some sample (of "
          f"{len(real)}); grids in {args.grids}/flags_<model>.png")


if __name__ == "__main__":
    main()
