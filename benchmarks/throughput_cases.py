"""The cases benchmarks/throughput.py measures: for each model, the gan-train overrides, the training data, and
the plain PyTorch loop that does the same work.

For each model (DCGAN-64; the MLP GAN of Goodfellow et al.; the VAE; CycleGAN at 128 px; pix2pix at 256 px;
text_cgan on captioned digits) the benchmark measures, in one process:

  a. gan-train's real path: the config a user gets from `gan-train model=... data=... ...` (composed by
     Hydra from the packaged conf/, with the default callbacks: checkpoints, sample grid, RNG state and
     progress bar, and logger=tensorboard), built by `gan_cli.commands.train.build` and run by `trainer.fit`;
  b. a plain PyTorch loop over the same networks (instantiated from the same config nodes, in the same
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

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Step = Callable[[dict], None]  # one training step of the plain loop on one batch


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
        Case("cyclegan", f"CycleGAN-{256 if gpu else 128}", ["model=cyclegan", "data=unpaired_folder",
                                                              f"data.crop_size={256 if gpu else 128}", *translation],
             unpaired_images, plain_cyclegan, batch_size=1, warmup=2, timed=10,
             quick_warmup=1, quick_timed=2, repeats=3, reference="cycle_gan", fp32_too=True),
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


# --- b. the plain loop -----------------------------------------------------------------------------
def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on `loss`, as the models' manual optimization does it."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def frozen(*nets: nn.Module):
    """The nets' parameters without gradients, as LightningModule.toggle_optimizer leaves the parameters
    of the other optimizer while one network (or pair of networks) is updated."""
    params = [p for net in nets for p in net.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def plain_gan(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """GAN.training_step with loss.d_steps=1: one D update on real + detached fake, then one G update on
    fresh noise with D's parameters frozen. Networks built in gan_cli.commands.train.build's order: G, then D."""
    from hydra.utils import instantiate

    generator = instantiate(cfg.model.generator).to(device).train()
    discriminator = instantiate(cfg.model.discriminator).to(device).train()
    loss = instantiate(cfg.loss)
    make_optimizer = instantiate(cfg.model.optimizer)  # Adam, betas (0.5, 0.999)
    opt_g = make_optimizer(generator.parameters(), lr=cfg.model.g_lr or cfg.model.lr)
    opt_d = make_optimizer(discriminator.parameters(), lr=cfg.model.d_lr or cfg.model.lr)
    latent_dim = generator.latent_dim
    torch.randn(cfg.model.num_samples, latent_dim)  # as GAN's fixed sample-grid noise: the same noise from here on

    def step(batch: dict) -> None:
        real = batch["image"].to(device)
        n = real.size(0)
        # D: ascend V(D, G) on real images and detached fakes
        with torch.no_grad():
            fake = generator(torch.randn(n, latent_dim, device=device))
        update(opt_d, loss.d_loss(discriminator(real), discriminator(fake)))
        loss.after_d_step(discriminator)
        # G: descend the generator loss on fresh noise, D frozen
        with frozen(discriminator):
            update(opt_g, loss.g_loss(discriminator(generator(torch.randn(n, latent_dim, device=device)))))

    return step, {"generator": generator, "discriminator": discriminator}


def translation_parts(cfg, device: str, generators: int, discriminators: int):
    """What a TranslationModel builds: `generators` networks from the model's generator node, then
    `discriminators` from its discriminator node (both `_partial_`), init_weights_ on each in that order,
    the loss, and one Adam over all generators and one over all discriminators (configure_optimizers).

    The learning rate is model.lr: configure_optimizers' LambdaLR schedules start at factor 1 and step only
    at epoch end (TranslationModel.on_train_epoch_end), after the timed window, so the loop has none.
    """
    from hydra.utils import instantiate

    from gan_cli.nets.norm import init_weights_

    make_g, make_d = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
    gs = [make_g() for _ in range(generators)]
    ds = [make_d() for _ in range(discriminators)]
    for net in gs + ds:
        init_weights_(net, cfg.model.init, cfg.model.init_gain)  # on the CPU, as in the model's constructor
        net.to(device).train()
    make_optimizer = instantiate(cfg.model.optimizer)  # Adam, betas (0.5, 0.999)
    opt_g = make_optimizer(itertools.chain(*(g.parameters() for g in gs)), lr=cfg.model.lr)
    opt_d = make_optimizer(itertools.chain(*(d.parameters() for d in ds)), lr=cfg.model.lr)
    return gs, ds, instantiate(cfg.loss), opt_g, opt_d


def halved_d_loss(cfg, loss, critic: Callable, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """TranslationModel.discriminator_loss for a loss without penalty: d_loss_weight (1/2) * (real term
    + term on the detached fake)."""
    real_scores, fake_scores = critic(real), critic(fake.detach())
    return cfg.model.d_loss_weight * (loss.d_real_loss(real_scores) + loss.d_fake_loss(fake_scores))


def plain_cyclegan(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """CycleGAN.training_step: the generators first (adversarial, cycle and identity terms; discriminators
    frozen), then both discriminators on fakes drawn from the two image pools."""
    from gan_cli.nets import ImagePool

    (G_A, G_B), (D_A, D_B), loss, opt_g, opt_d = translation_parts(cfg, device, 2, 2)
    lambda_A, lambda_B, lambda_idt = cfg.model.lambda_A, cfg.model.lambda_B, cfg.model.lambda_identity
    fake_A_pool, fake_B_pool = ImagePool(cfg.model.pool_size), ImagePool(cfg.model.pool_size)

    def step(batch: dict) -> None:
        real_A, real_B = batch["A"].to(device), batch["B"].to(device)
        with frozen(D_A, D_B):
            fake_B = G_A(real_A)
            cycle_A = lambda_A * F.l1_loss(G_B(fake_B), real_A)
            fake_A = G_B(real_B)
            cycle_B = lambda_B * F.l1_loss(G_A(fake_A), real_B)
            idt_A = lambda_B * lambda_idt * F.l1_loss(G_A(real_B), real_B)
            idt_B = lambda_A * lambda_idt * F.l1_loss(G_B(real_A), real_A)
            update(opt_g, loss.g_loss(D_A(fake_B)) + loss.g_loss(D_B(fake_A)) + cycle_A + cycle_B + idt_A + idt_B)
        d_A = halved_d_loss(cfg, loss, D_A, real_B, fake_B_pool.query(fake_B))
        d_B = halved_d_loss(cfg, loss, D_B, real_A, fake_A_pool.query(fake_A))
        update(opt_d, d_A + d_B)
        loss.after_d_step(D_A)
        loss.after_d_step(D_B)

    return step, {"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B}


def plain_pix2pix(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """Pix2Pix.training_step: G(input); D on (input, target) vs (input, detached output); then G on the
    adversarial term of D(input, output) + lambda_L1 * L1, D frozen."""
    (G,), (D,), loss, opt_g, opt_d = translation_parts(cfg, device, 1, 1)
    lambda_L1 = cfg.model.lambda_L1

    def step(batch: dict) -> None:
        real_A, real_B = batch["A"].to(device), batch["B"].to(device)
        fake_B = G(real_A)

        def critic(outputs: torch.Tensor) -> torch.Tensor:  # D sees the input and an output together
            return D(torch.cat([real_A, outputs], dim=1))

        update(opt_d, halved_d_loss(cfg, loss, critic, real_B, fake_B))
        loss.after_d_step(D)
        with frozen(D):
            update(opt_g, loss.g_loss(critic(fake_B)) + lambda_L1 * F.l1_loss(fake_B, real_B))

    return step, {"G": G, "D": D}


def plain_vae(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """VAE.training_step: the negative ELBO of the batch (the model's own `objective`, its networks built by its
    constructor), one Adam update."""
    from hydra.utils import instantiate

    model = instantiate(cfg.model).to(device).train()
    optimizer = model.configure_optimizers()

    def step(batch: dict) -> None:
        update(optimizer, model.objective(batch["image"].to(device), training=True)["loss"])

    return step, {"encoder": model.encoder, "decoder": model.decoder}


def plain_text_cgan(cfg, device: str) -> tuple[Step, dict[str, nn.Module]]:
    """TextCGAN.training_step with loss.d_steps=1: one matching-aware D update ((real, text) real; (fake, text)
    and (real, wrong text) fake), then G's adversarial term + the INT term on interpolated captions, D frozen. The
    model's own term functions (gan_cli.models.text_to_image), its networks built by its constructor; the caption
    bank the model keeps for sampling is not kept."""
    from hydra.utils import instantiate

    from gan_cli.models.text_to_image.matching import matching_discriminator_terms

    model = instantiate(cfg.model).to(device).train()
    opt_g, opt_d = model.configure_optimizers()

    def step(batch: dict) -> None:
        real, text, wrong = (batch[key].to(device) for key in ("image", "text", "wrong_text"))
        with torch.no_grad():
            fake = model.generator(model.sample_noise(real.size(0)), text)
        terms, _, _, _ = matching_discriminator_terms(model, model.discriminator, real, fake, text, wrong)
        update(opt_d, sum(terms.values()))
        model.loss.after_d_step(model.discriminator)
        with frozen(model.discriminator):
            g_loss, kl = model.generated_loss(real, text)
            if model.interpolation:
                beta = model.interpolation_beta
                mixed = beta * text + (1 - beta) * text[torch.randperm(text.size(0), device=text.device)]
                g_loss = g_loss + model.interpolation * model.generated_loss(real, mixed)[0]
            if kl is not None:
                g_loss = g_loss + model.kl_weight * kl
            update(opt_g, g_loss)

    return step, {"generator": model.generator, "discriminator": model.discriminator}
