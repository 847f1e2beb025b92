"""UNIT (Liu et al. 2017), its pieces: shared blocks are one set of parameters, the KL term's closed form, the
codes' noise, the cycle through the latent space and the objective term by term with stand-in networks.
Training, resuming and gan-translate are in tests/test_unit_training.py."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from gan_cli.models.translation.base import translate_images
from gan_cli.models.translation.unit import latent_kl
from gan_cli.models.translation.unit_nets import UNITGenerator
from tests.unit_helpers import stand_in_unit

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the networks ------------------------------------------------------------------------------------
def tiny_generator() -> UNITGenerator:
    torch.manual_seed(0)
    return UNITGenerator(channels=3, dim=4, n_downsample=2, n_res=3, n_shared=1)


def used_by(generator: UNITGenerator, domain: str, x: torch.Tensor) -> set[int]:
    """The ids of the parameters that a reconstruction loss of `domain` alone sends a gradient to."""
    generator.zero_grad(set_to_none=True)
    generator.decode(generator.encode(x, domain), domain).abs().mean().backward()
    return {id(p) for p in generator.parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_the_shared_blocks_are_one_set_of_parameters_in_both_domains():
    g = tiny_generator()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    shared = {id(p) for m in (g.shared_encoder, g.shared_decoder) for p in m.parameters()}
    assert shared and len(list(g.shared_encoder)) == len(list(g.shared_decoder)) == 1
    # the two domains' paths meet exactly in the shared blocks: the same tensors, not copies
    assert used_by(g, "A", x) & used_by(g, "B", x) == shared
    assert used_by(g, "A", x).isdisjoint(id(p) for p in g.encoders["B"].parameters())
    # both translators (and the state_dict) hold each shared tensor once
    for source, target in (("A", "B"), ("B", "A")):
        assert g.translator(source, target).generator.shared_encoder is g.shared_encoder
    assert sum(k.startswith("shared_encoder.") for k in g.state_dict()) == len(g.shared_encoder.state_dict())

    # a step on domain A's loss alone changes what domain B computes, through the shared blocks only
    before_B = g.encode(x, "B").detach()
    before_B_front = g.encoders["B"](x).detach()
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    opt.zero_grad()
    g.decode(g.encode(x, "A"), "A").abs().mean().backward()
    assert all(p.grad is None for p in g.encoders["B"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.shared_encoder.parameters())
    opt.step()
    assert torch.equal(g.encoders["B"](x), before_B_front)
    assert not torch.allclose(g.encode(x, "B"), before_B)


def test_the_kl_term_is_the_references_mean_of_mu_squared_and_matches_the_closed_form():
    mu = torch.randn(3, 8, 4, 4)
    closed_form = kl_divergence(Normal(mu, 1.0), Normal(torch.zeros_like(mu), 1.0)).sum()  # sum(mu^2) / 2
    assert closed_form.item() == pytest.approx(0.5 * mu.pow(2).sum().item(), rel=1e-5)
    assert latent_kl(mu).item() == pytest.approx(2 * closed_form.item() / mu.numel(), rel=1e-5)
    assert latent_kl(torch.zeros(2, 4)).item() == 0.0


def test_codes_get_unit_variance_noise_and_translation_decodes_the_mean():
    g = tiny_generator()
    mu = torch.zeros(4000)
    z = g.sample(mu)
    assert abs(z.mean().item()) < 0.1 and z.std().item() == pytest.approx(1.0, abs=0.05)
    x = torch.rand(1, 3, 16, 16)
    translator = g.translator("A", "B").eval()
    assert torch.equal(translator(x), translator(x))  # no noise at test time
    assert torch.allclose(translator(x), g.decode(g.encode(x, "A"), "B"))
    with pytest.raises(ValueError, match="multiples of 4"):
        translator(torch.rand(1, 3, 18, 16))
    g.eval()  # translating through a view leaves the generator in the mode it was in
    translate_images(g.translator("B", "A"), torch.rand(1, 3, 18, 14))
    assert not g.training
    with pytest.raises(ValueError, match="n_shared"):
        UNITGenerator(channels=1, n_res=2, n_shared=3)


# --- the objective with stand-in networks --------------------------------------------------------------
def test_the_cycle_goes_through_the_latent_space():
    model = stand_in_unit()
    a = torch.rand(2, 3, 4, 4)
    result = model.latent_pass(a, "A")
    calls = model.G.calls
    # encode as A, decode as B, encode that as B, decode as A (the cycle); and decode as A (reconstruction)
    assert [(op, d) for op, d, _ in calls] == [("encode", "A"), ("decode", "B"), ("encode", "B"), ("decode", "A"),
                                              ("decode", "A")]
    assert calls[2][2] is result.translation  # the translation itself is encoded again
    assert torch.allclose(calls[3][2], result.cycle_mu + 0.5)  # the cycle decodes a noisy code
    assert torch.allclose(result.cycle, -a)  # -(a + 0.5) + 0.5 decoded as A
    assert torch.allclose(result.reconstruction, a + 0.5) and torch.allclose(result.translation, -(a + 0.5))
    model.G.calls.clear()
    assert stand_in_unit(recon_x_cyc_w=0.0).latent_pass(a, "B").cycle is None


def test_generator_terms_by_hand_with_the_references_weights():
    seen = []

    def perceptual(x, y):
        seen.append((x, y))
        return (x - y).abs().mean()

    model = stand_in_unit(perceptual=perceptual)
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4) - 1
    terms, pass_a, pass_b = model.generator_terms(a, b)
    mean = lambda t: t.mean().item()  # noqa: E731
    expected = {
        "adv_A": 0.0, "adv_B": 0.0,                              # D scores 1 everywhere: no LSGAN loss
        "recon_x_A": 10 * 0.5,                                   # decode_A(a + 0.5) = a + 0.5
        "recon_x_B": 10 * mean((-(b + 0.5) - b).abs()),          # decode_B(b + 0.5) = -(b + 0.5)
        "kl_A": 0.01 * mean(a ** 2), "kl_B": 0.01 * mean(b ** 2),
        "kl_cyc_A": 0.01 * mean((a + 0.5) ** 2),                 # mu_ab = encode_B(-(a + 0.5))
        "kl_cyc_B": 0.01 * mean((b + 0.5) ** 2),                 # mu_ba = encode_A(b + 0.5)
        "cyc_x_A": 10 * mean((-a - a).abs()),                    # decode_A(-(a + 0.5) + 0.5) = -a
        "cyc_x_B": 10 * mean((-(b + 1) - b).abs()),              # decode_B(b + 0.5 + 0.5) = -(b + 1)
        "perc_A": mean((a + (a + 0.5)).abs()),             # perceptual(a, x_ab), x_ab = -(a + 0.5)
        "perc_B": mean((b - (b + 0.5)).abs()),             # perceptual(b, x_ba), x_ba = decode_A(b + 0.5)
    }
    assert {k: v.item() for k, v in terms.items()} == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # D_A judges translations into A, D_B translations into B
    assert model.D_A.seen[-1] is pass_b.translation and model.D_B.seen[-1] is pass_a.translation
    assert seen[0][0] is a and seen[0][1] is pass_a.translation and seen[1][0] is b
