"""The plain PyTorch loops benchmarks/throughput.py measures beside gan-train (benchmarks/throughput_cases.py says
what each case runs): per model, the networks, optimizers and loss objects a user's own training script would
build from the same config nodes, and one training step of that script on one batch."""

from __future__ import annotations

import contextlib
import itertools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Step = Callable[[dict], None]  # one training step of the plain loop on one batch


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
