"""The cases benchmarks/throughput.py measures: for each model, the gan-train overrides, the training data, and
the plain PyTorch loop that does the same work.

For each model (DCGAN-64; the MLP GAN of Goodfellow et al.; the VAE; CycleGAN at 128 px; pix2pix at 256 px;
text_cgan on captioned digits) the benchmark measures, in one process:

  a. gan-train's real path: the config a user gets from `gan-train model=... data=... ...` (composed by
     Hydra from the packaged conf/, with the default callbacks: checkpoints, sample grid, RNG state and
     progress bar, and logger=tensorboard), built by `gan_cli.commands.train.build` and run by `trainer.fit`;
  b. a plain PyTorch loop (benchmarks/throughput_plain.py) over the same networks (instantiated from the same config nodes, in the same
     order, with the same seed: identical initial weights), the same Adam settings, the same loss objects
     (`gan_cli.losses`), the same DataModule's train_dataloader and batch size, doing per batch what the
     model's training_step does (with loss.d_steps=1):
       - DCGAN, MLP GAN (`GAN`): one D update on real + detached fake, then one G update with D frozen;
       - CycleGAN: one update of G_A and G_B together (adversarial, cycle and identity terms; D_A and D_B
         frozen), then one update of D_A and D_B together on fakes drawn from two ImagePool(50)s, the D
         loss halved (`gan_cli.nets.ImagePool`, weights initialised by `gan_cli.nets.norm.init_weights_`);
       - pix2pix: G(input); one D update on (input, target) vs (input, detached output), halved; then one
         G update on the adversarial term + 100 * L1, D frozen.
       - VAE: one Adam update on the negative ELBO, computed by the model's own `objective` (no Lightning);
       - text_cgan: one matching-aware D update and one G update (adversarial + INT terms), with the model's own
         term functions (gan_cli.models.text_to_image.matching, `generated_loss`).
     The translation models' learning-rate schedules (LambdaLR) step only at epoch end, after the timed
     window, and start at factor 1, so the plain loops use the constant model.lr and have none.
     Checked by hand: from the same seed, both sides' weights after the same batches are bit-identical
     on a CPU (the plain loop draws the same random numbers in the same order, the GAN's fixed grid noise
     included).

The models train with their default networks and objectives: DCGAN and the MLP GAN on data=fake, batch 64;
CycleGAN (ResNet generator, 6 blocks at 128 px, ngf 64; PatchGAN, ndf 64; instance norm; lsgan) on
data=unpaired_folder with crop_size 128 (resized to 143, random crop and flip), pix2pix (U-Net 256, batch
norm, dropout; PatchGAN on 6 channels; nonsaturating) on data=paired_folder with crop_size 256 (286, crop
and flip), both at the papers' batch size 1 with data.num_workers=0. Their image folders are written by
the benchmark into a temporary folder: smooth random-pattern PNGs, 256x256 for trainA/ and trainB/,
512x256 side-by-side pairs for train/, one image per batch of the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from throughput_plain import Step, plain_cyclegan, plain_gan, plain_pix2pix, plain_text_cgan, plain_vae
from torch import nn


@dataclass
class Case:
    key: str  # its name in --models
    name: str
    overrides: list[str]
    data: Callable[[Path, int], list[str]]  # provides `count` training images (files under a folder if needed)
    plain: Callable[..., tuple[Step, dict[str, nn.Module]]]  # builds the plain loop's networks and its step
    batch_size: int
    warmup: int  # batches before the timed window
    timed: int  # batches in the timed window (at least; longer where a window would last under --min-seconds)
    quick_warmup: int
    quick_timed: int
    repeats: int  # default number of repeats per side
    limit: bool = False  # a GAN step: measure benchmarks/throughput_limit.limit_gan beside it
    reference: str | None = None  # "dcgan", "cycle_gan" or "pix2pix": the reference implementation (--refs)
    fp32_too: bool = False  # on a GPU also engine=fast in fp32, to show what bf16 gains
    capture: bool = False  # on a GPU also engine=fast engine.capture_step=true (the whole update in one CUDA graph)
    max_batches: int | None = None  # the batches of one epoch of a dataset of fixed size (windows stay inside it)
    results: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # side -> what it is, TFLOP/s, ...


def make_cases(device: str) -> list[Case]:
    """The cases for `device`: on a GPU, DCGAN-64 also at batch 256 and the translation models at 256 px with the
    default data settings (workers, pinned memory); on a CPU, CycleGAN at 128 px and no workers (a worker
    competes with the training step for 2 cores)."""
    gpu = device == "cuda"
    trainer = "trainer=gpu" if gpu else "trainer=cpu"
    run = ["logger=tensorboard", "callbacks=default", trainer]
    common = ["data=fake", *run]
    translation = ["data.batch_size=1", *run, *([] if gpu else ["data.num_workers=0"])]  # the papers' batch size
    dcgan = ["model=dcgan", *common, "data.image_size=64", "data.channels=3", "data.mean=[0.5,0.5,0.5]",
             "data.std=[0.5,0.5,0.5]", "model.generator.ngf=64", "model.discriminator.ndf=64"]
    cases = [
        Case("dcgan", "DCGAN-64", [*dcgan, "data.batch_size=64"], fake_images, plain_gan, batch_size=64, warmup=2,
             timed=20, quick_warmup=1, quick_timed=3, repeats=3, limit=True, reference="dcgan", capture=True),
        Case("mlp", "MLP GAN (32px)", ["model=gan", *common, "data.batch_size=64", "data.image_size=32",
                                       "data.channels=1"],
             fake_images, plain_gan, batch_size=64, warmup=20, timed=200, quick_warmup=20, quick_timed=20,
             repeats=5, limit=True, capture=True),
        # on a GPU the warm-up lets CycleGAN's image pools (50) fill: the captured side replays from then on
        Case("cyclegan", f"CycleGAN-{256 if gpu else 128}", ["model=cyclegan", "data=unpaired_folder",
                                                              f"data.crop_size={256 if gpu else 128}", *translation],
             unpaired_images, plain_cyclegan, batch_size=1, warmup=56 if gpu else 2, timed=10,
             quick_warmup=1, quick_timed=2, repeats=3, reference="cycle_gan", fp32_too=True, capture=True),
        Case("pix2pix", "pix2pix-256", ["model=pix2pix", "data=paired_folder", "data.crop_size=256", *translation],
             paired_images, plain_pix2pix, batch_size=1, warmup=2, timed=20,
             quick_warmup=1, quick_timed=2, repeats=3, reference="pix2pix", capture=True),
    ]
    cases.insert(2, Case("vae", "VAE (28px)", ["model=vae", *common, "data.batch_size=64", "data.image_size=28",
                                               "data.channels=1"],
                         fake_images, plain_vae, batch_size=64, warmup=20, timed=200, quick_warmup=20, quick_timed=20,
                         repeats=5))
    cases.append(Case("text_cgan", "text_cgan (28px)", ["model=text_cgan", "text_encoder=hashing", *run,
                                                        "data.batch_size=64"],
                      captioned_digits, plain_text_cgan, batch_size=64, warmup=5, timed=50, quick_warmup=3,
                      quick_timed=5, repeats=3, max_batches=4500 // 64))
    if gpu:
        cases.insert(1, Case("dcgan256", "DCGAN-64 batch 256", [*dcgan, "data.batch_size=256"], fake_images,
                             plain_gan, batch_size=256, warmup=2, timed=20, quick_warmup=1, quick_timed=3, repeats=3,
                             limit=True, reference="dcgan", fp32_too=True, capture=True))
    return cases


# --- data ------------------------------------------------------------------------------------------
def fake_images(folder: Path, count: int) -> list[str]:
    """data=fake: synthetic images in memory, no files."""
    return [f"data.dataset.size={count}"]


def write_pngs(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    """`count` smooth random colour patterns (8x8-pixel noise, enlarged bicubically), like photos to the
    PNG decoder and the resize, unlike white noise."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (8, 8 * width // height, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(folder / f"{i:05d}.png")


def unpaired_images(folder: Path, count: int) -> list[str]:
    """data=unpaired_folder: trainA/ and trainB/ with `count` 256x256 images each (the dataset is as long as
    its larger domain), like horse2zebra's."""
    for seed, domain in enumerate("AB"):
        write_pngs(folder / f"train{domain}", count, 256, 256, seed)
    return [f"data.root={folder}"]


def captioned_digits(folder: Path, count: int) -> list[str]:
    """data=mnist_5k_captions (text_cgan's default): the 4,500 packaged training digits with their captions,
    embedded by text_encoder=hashing (no sentence model to load); the window stays within its 70 batches."""
    return []


def paired_images(folder: Path, count: int) -> list[str]:
    """data=paired_folder: train/ with `count` 512x256 images, A and B side by side, like facades'."""
    write_pngs(folder / "train", count, 512, 256, seed=2)
    return [f"data.root={folder}"]

def run_overrides(case: Case, batches: int) -> list[str]:
    """The case's overrides for one epoch of exactly `batches` batches (its data is made by `case.data`)."""
    return [*case.overrides, "trainer.max_epochs=1", f"++trainer.limit_train_batches={batches}"]
