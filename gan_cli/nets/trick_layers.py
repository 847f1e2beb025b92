"""GAN training "tricks" as plain nn.Modules, free of Lightning and Hydra so that any network can use them.

- `MinibatchDiscrimination` and `VirtualBatchNorm`: Salimans et al. 2016, "Improved Techniques for Training
  GANs" (sections 3.2 and 3.4), checked against the authors' code (openai/improved-gan).
- `DiffAugment`: Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", with the
  behaviour of the authors' PyTorch version (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["AUGMENTATIONS", "DiffAugment", "MinibatchDiscrimination", "VirtualBatchNorm", "random_brightness",
           "random_contrast", "random_cutout", "random_saturation", "random_translation", "reference_pass"]


# --------------------------------------------------------------------------------------------------------
# Minibatch discrimination (Salimans et al. 2016, section 3.2)


class MinibatchDiscrimination(nn.Module):
    """Appends to each example's features how close it is to the other examples of its minibatch.

    Why: a discriminator that looks at one example at a time cannot tell that the generator has collapsed
    onto a few outputs; these extra features let it see (and so penalise) a batch of near-identical samples.

    With features f (N, A) and a learned tensor T (A, B, C): M = f @ T viewed as (N, B, C);
    c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_L1); o(x_i)_b = sum over j != i of c_b(x_i, x_j); the output is
    concat(f, o), of shape (N, A + B) = (N, `out_features`).

    The sum leaves out j = i: the paper writes the sum over all j, which only adds the constant
    c_b(x_i, x_i) = exp(0) = 1 to every feature, and the authors' code removes it (it adds 1e6 to the
    distance of each example to itself). So o lies in [0, N - 1]: 0 for an example far from all others,
    N - 1 when the whole batch is identical, and 0 for a batch of one.

    T starts from N(0, 0.05), the authors' initialisation. Their layer also weight-normalises T with a
    data-dependent initialisation and adds a learned bias (-1 at first) to o; those are left out here (the
    discriminator's next linear layer supplies a bias). Inputs with more than two dimensions are flattened,
    as in their code. Memory and time grow as N^2 * B * C.
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.out_features = in_features + num_kernels
        self.T = nn.Parameter(torch.empty(in_features, num_kernels, kernel_dim))
        nn.init.normal_(self.T, 0.0, 0.05)

    def closeness(self, features: Tensor) -> Tensor:
        """o: (N, num_kernels), each example's summed closeness to the other examples, per kernel."""
        m = (features @ self.T.flatten(1)).view(-1, self.num_kernels, self.kernel_dim)  # (N, B, C)
        per_kernel = m.transpose(0, 1)  # (B, N, C)
        distances = torch.cdist(per_kernel, per_kernel, p=1)  # (B, N, N): L1 distances between rows
        return torch.exp(-distances).sum(dim=2).t() - 1.0  # less c_b(x_i, x_i) = 1

    def forward(self, features: Tensor) -> Tensor:
        features = features.flatten(1)
        if features.size(1) != self.in_features:
            raise ValueError(f"expected {self.in_features} features per example, got {features.size(1)}")
        return torch.cat([features, self.closeness(features)], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"


# --------------------------------------------------------------------------------------------------------
# Virtual batch normalisation (Salimans et al. 2016, section 3.4)


class VirtualBatchNorm(nn.Module):
    """Normalises each example with the statistics of a fixed reference batch and of the example itself.

    Why: batch norm makes a generated image depend on the other images of its batch. VBN removes that
    dependence: example x is normalised with the statistics of {reference batch} + {x}, so its output is
    the same alone and inside any batch.

    Following the authors' code, the reference batch of R examples contributes its per-channel mean and
    mean of squares; the example's own per-channel mean and mean of squares (over its H x W positions; for
    (N, C) inputs, its values themselves) are mixed in with weight 1 / (R + 1):
    mean = (R * ref_mean + x_mean) / (R + 1), likewise for the mean of squares, and var = mean_sq - mean^2.
    That is exactly the batch-norm statistics of the reference batch with x added to it. Then
    y = gamma * (x - mean) / sqrt(var + eps) + beta, with learned gamma (from 1) and beta (from 0), one per
    channel. Inputs are (N, C) or (N, C, H, W) (any (N, C, ...) in fact).

    `set_reference` stores the reference statistics in buffers, so they travel in `state_dict()` and in
    checkpoints. They are stored detached: no gradient flows through them (the authors' TensorFlow graph
    back-propagates through the reference batch too).

    Use in a generator: draw a reference batch of noise z_ref once, at the start of training, and keep it
    (in a buffer, so checkpoints keep it too). Each VBN layer's reference is what reaches that layer when
    z_ref goes through the generator, layers before it already normalised with their own reference, so the
    layers must be set in order, first to last: `reference_pass` does this,

        with reference_pass(generator):
            generator(z_ref)          # sets every VBN layer's reference, in order
        fake = generator(z)           # each sample normalised with the reference statistics

    The paper runs this reference pass at every training step (VBN "requires running forward propagation
    on two minibatches", which is why the authors use it in the generator only), so that the statistics
    follow the changing weights; running it once and keeping the statistics is cheaper but lets them go
    stale. A layer used before any reference is set raises a RuntimeError.
    """

    reference_mean: Tensor
    reference_mean_sq: Tensor
    reference_size: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("reference_mean", torch.zeros(num_features))
        self.register_buffer("reference_mean_sq", torch.zeros(num_features))
        self.register_buffer("reference_size", torch.tensor(0, dtype=torch.long))  # R; 0: no reference yet
        self.capturing = False  # True inside `reference_pass`: forward first takes its input as the reference

    @property
    def has_reference(self) -> bool:
        return bool(self.reference_size > 0)

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2 or x.size(1) != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, ...) activations, got shape {tuple(x.shape)}")

    def set_reference(self, ref_activations: Tensor) -> None:
        """Store the per-channel mean and mean of squares of a reference batch (N, C, ...) and its size."""
        self._check(ref_activations)
        if ref_activations.size(0) == 0:
            raise ValueError("the reference batch is empty")
        ref = ref_activations.detach()
        dims = [0, *range(2, ref.dim())]
        self.reference_mean.copy_(ref.mean(dim=dims))
        self.reference_mean_sq.copy_(ref.square().mean(dim=dims))
        self.reference_size.fill_(ref.size(0))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.capturing:
            self.set_reference(x)
        if not self.has_reference:
            raise RuntimeError("VirtualBatchNorm has no reference batch: call set_reference(activations) first, "
                               "or run the reference batch through the network inside reference_pass(network)")
        channel_shape = (1, -1) + (1,) * (x.dim() - 2)
        dims = tuple(range(2, x.dim()))
        own_mean = x.mean(dim=dims, keepdim=True) if dims else x
        own_mean_sq = x.square().mean(dim=dims, keepdim=True) if dims else x.square()
        new_coeff = 1.0 / (float(self.reference_size) + 1.0)
        mean = new_coeff * own_mean + (1.0 - new_coeff) * self.reference_mean.view(channel_shape)
        mean_sq = new_coeff * own_mean_sq + (1.0 - new_coeff) * self.reference_mean_sq.view(channel_shape)
        var = (mean_sq - mean.square()).clamp_min(0.0)  # >= 0 in exact arithmetic; rounding can go below
        normalised = (x - mean) * torch.rsqrt(var + self.eps)
        return normalised * self.weight.view(channel_shape) + self.bias.view(channel_shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


@contextmanager
def reference_pass(network: nn.Module) -> Iterator[None]:
    """Inside this block, every VirtualBatchNorm layer of `network` takes the input of its next forward
    call as its reference batch before normalising it, so one forward pass of the reference batch sets all
    the layers in order (see VirtualBatchNorm)."""
    layers = [m for m in network.modules() if isinstance(m, VirtualBatchNorm)]
    for layer in layers:
        layer.capturing = True
    try:
        yield
    finally:
        for layer in layers:
            layer.capturing = False


# --------------------------------------------------------------------------------------------------------
# Differentiable augmentation (Zhao et al. 2020)
#
# Each function below takes images (N, C, H, W) and an optional torch.Generator (on the images' device;
# None: torch's global one) and draws its random numbers per sample. All are differentiable w.r.t. the
# images. Images are in the data's [-1, 1] range, and, as in the reference, "zero" (translation's padding,
# cutout's hole) is the tensor value 0: mid-grey in [-1, 1] data, not black (-1).

Augmentation = Callable[[Tensor, torch.Generator | None], Tensor]


def _per_sample_uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws of shape (N, 1, 1, 1), one per sample, in x's dtype and device."""
    return torch.rand(x.size(0), 1, 1, 1, generator=generator, dtype=x.dtype, device=x.device)


def _per_sample_int(low: int, high: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Integers in [low, high) of shape (N, 1, 1), one per sample."""
    return torch.randint(low, high, (x.size(0), 1, 1), generator=generator, device=x.device)


def _fraction_of(size: int, ratio: float) -> int:
    """ratio * size rounded half up, as the reference rounds its shift and cutout sizes."""
    return int(size * ratio + 0.5)


def random_brightness(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Adds a per-sample constant drawn from U[-0.5, 0.5) to all channels and positions."""
    return x + (_per_sample_uniform(x, generator) - 0.5)


def random_saturation(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scales each pixel's deviation from its mean over the channels by a per-sample factor in U[0, 2).

    For 1-channel images every pixel equals its channel mean, so this is a no-op (the factor is still drawn,
    keeping the random stream the same whatever the channel count)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_sample_uniform(x, generator) * 2.0) + mean


def random_contrast(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scales each sample's deviation from its own mean (over channels and positions) by U[0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample_uniform(x, generator) + 0.5) + mean


def random_translation(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> Tensor:
    """Shifts each sample by whole pixels, drawn uniformly from [-s, s] per axis with s = ratio * size
    (rounded half up), filling the uncovered border with zeros."""
    n, _, h, w = x.shape
    shift_h, shift_w = _fraction_of(h, ratio), _fraction_of(w, ratio)
    dy = _per_sample_int(-shift_h, shift_h + 1, x, generator)
    dx = _per_sample_int(-shift_w, shift_w + 1, x, generator)
    # output (i, j) reads padded (i + dy + 1, j + dx + 1); indices past the image land on the zero padding
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indexing puts C last


def random_cutout(x: Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> Tensor:
    """Zeroes (all channels of) a square of ratio * size per side at a random place in each sample.

    As in the reference, the square's centre is uniform over the image (for even sizes, over [0, size]),
    and the part of the square outside the image is lost: a hole at a corner can be as small as a quarter
    of the full square."""
    _, _, h, w = x.shape
    size_h, size_w = _fraction_of(h, ratio), _fraction_of(w, ratio)
    top = _per_sample_int(0, h + (1 - size_h % 2), x, generator) - size_h // 2
    left = _per_sample_int(0, w + (1 - size_w % 2), x, generator) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)  # (N, H, W)
    return x * (~hole).unsqueeze(1).to(x.dtype)


#: the policy names DiffAugment accepts, and the augmentations each one applies, in order
AUGMENTATIONS: dict[str, tuple[Augmentation, ...]] = {
    "color": (random_brightness, random_saturation, random_contrast),
    "translation": (random_translation,),
    "cutout": (random_cutout,),
}


class DiffAugment(nn.Module):
    """Differentiable augmentation of every image the discriminator sees (Zhao et al. 2020).

    Why: with little data the discriminator memorises the training set. Augmenting only the real images
    would teach the generator the augmented distribution; DiffAugment applies the same random
    transformations to real and generated images, both when training D and when training G, and since
    they are differentiable the generator's gradient passes through them. Use one module for both:
    `D(augment(real))`, `D(augment(fake))`.

    `policy` is a comma-separated list of names from AUGMENTATIONS, applied in the order given:
    color (brightness U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5)), translation (up to 1/8
    of the size, zero padding), cutout (a square of half the size zeroed). Every sample gets its own
    random draws, and each call draws anew. "" is the identity. Images are (N, C, H, W) in [-1, 1]; zero
    padding and cutout write the value 0 (mid-grey there), as the reference does; on 1-channel images the
    saturation step is a no-op.
    """

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        super().__init__()
        names = tuple(name.strip() for name in policy.split(",") if name.strip())
        unknown = [name for name in names if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {', '.join(map(repr, unknown))}; "
                             f"valid names: {', '.join(AUGMENTATIONS)}")
        self.policy = names
        self.augmentations = [fn for name in names for fn in AUGMENTATIONS[name]]

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if images.dim() != 4:
            raise ValueError(f"DiffAugment expects images (N, C, H, W), got shape {tuple(images.shape)}")
        for augment in self.augmentations:
            images = augment(images, generator)
        return images.contiguous()

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}"
