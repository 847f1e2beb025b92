"""InfoGAN (Chen et al. 2016): a GAN whose input is split into incompressible noise z and a latent code c,
trained to keep c recoverable from G(z, c): min_{G,Q} max_D V(D, G) - lambda * L_I(G, Q), where L_I is the
variational lower bound of the mutual information I(c; G(z, c)) (gan_cli.losses.information) and Q(c | x)
is a head on D's body.

As in the authors' code (openai/InfoGAN), -lambda * L_I is added to both D's and G's losses, computed on
the batch of fakes each step generates; Q's head and the shared body are trained by D's optimizer, G's
optimizer only moves G. The noise and the continuous codes are uniform in [-1, 1], the categorical codes
uniform over their values.

The code vector is laid out as [one-hot of each categorical code, continuous codes]; the codes are named
c1, c2, ... in that order (MNIST: c1 the 10-valued digit code, c2 and c3 continuous).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.losses.adversarial import AdversarialLoss
from gan_cli.losses.information import categorical_codes_information, continuous_information
from gan_cli.models.adversarial import AdversarialModule, Critic
from gan_cli.models.contract import Sampler, SelfEvaluating
from gan_cli.models.gans.infogan_scores import best_matching, real_code_counts, sampled_code_counts

#: columns of the logged grids: noise samples (categorical grids), code values from -2 to 2 (continuous)
GRID_COLUMNS = 10


class ScoresKeepingCodes(Critic):
    """D's scores; when called on the very tensor `fake`, Q's outputs come from the same pass through the
    shared body and are kept in `kept`. With D's batch normalisation in training mode a second pass (as the
    authors' code builds) gives the same values and gradients at the cost of another forward and backward
    pass through the body."""

    def __init__(self, network: nn.Module, fake: Tensor) -> None:
        super().__init__(network)
        self.fake, self.kept = fake, None

    def __call__(self, images: Tensor) -> Tensor:
        if images is not self.fake:
            return self.network(images)
        scores, self.kept = self.network.both(images)
        return scores


class InfoGAN(AdversarialModule, Sampler, SelfEvaluating):
    """Generator G(z, c), and a discriminator whose body is shared by D(x) and Q(c | x).

    `categorical_codes`: the number of values of each categorical code; `continuous_codes`: how many
    continuous codes; `info_weight`: lambda of the categorical codes' L_I, `continuous_weight`: that of the
    continuous codes; `learn_std`: whether Q also predicts the continuous codes' log-std (else std = 1).
    The networks must be built for the same codes (conf/model/infogan.yaml interpolates them).
    """

    captures_update = True

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 optimizer: Callable[..., Optimizer], lr: PositiveFloat = 2e-4, g_lr: PositiveFloat | None = None,
                 d_lr: PositiveFloat | None = None, noise_dim: int = 62, categorical_codes: Sequence[int] = (10,),
                 continuous_codes: int = 2, info_weight: float = 1.0, continuous_weight: float = 1.0,
                 learn_std: bool = False, num_samples: PositiveInt = 64) -> None:
        super().__init__(loss)
        self.generator, self.discriminator = generator, discriminator
        self.optimizer = optimizer
        self.g_lr, self.d_lr = g_lr or lr, d_lr or lr
        self.noise_dim = int(noise_dim)
        # plain ints: the hyperparameters go into checkpoints read with weights_only=True (no ListConfig)
        categorical_codes = [int(k) for k in categorical_codes]
        self.categorical_codes = categorical_codes
        self.continuous_codes = int(continuous_codes)
        self.info_weight, self.continuous_weight = float(info_weight), float(continuous_weight)
        self.learn_std = bool(learn_std)
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer"])
        self.latent_dim = self.noise_dim + sum(self.categorical_codes) + self.continuous_codes
        q_dim = sum(self.categorical_codes) + self.continuous_codes * (2 if self.learn_std else 1)
        if getattr(generator, "latent_dim", None) != self.latent_dim or getattr(discriminator, "q_dim", None) != q_dim:
            raise UserError(
                f"InfoGAN's networks do not fit its codes (noise_dim={self.noise_dim}, categorical_codes="
                f"{self.categorical_codes}, continuous_codes={self.continuous_codes}, learn_std={self.learn_std}): "
                f"G takes {getattr(generator, 'latent_dim', '?')} inputs (needs {self.latent_dim}) and Q gives "
                f"{getattr(discriminator, 'q_dim', '?')} outputs (needs {q_dim}). Set the codes on the model "
                "(model.categorical_codes=..., model.continuous_codes=...): the networks follow them."
            )
        self.num_classes = 0  # unconditional: the codes are drawn, not given by labels
        # Fixed draws for the logged grids.
        self.grid_row = 8
        self.register_buffer("fixed_z", self.sample_latent(num_samples)[0])
        self.register_buffer("grid_noise", self.sample_noise(GRID_COLUMNS))
        categorical, continuous = self.sample_codes(GRID_COLUMNS)
        self.register_buffer("grid_categorical", categorical)
        self.register_buffer("grid_continuous", continuous)

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    def critic(self, fake: Tensor | None = None) -> Critic:
        """D(x): the scores only (Q's head is not part of the adversarial game). Given `fake`, the critic keeps
        Q's outputs for those images from D's own pass over them (`ScoresKeepingCodes`)."""
        return Critic(self.discriminator) if fake is None else ScoresKeepingCodes(self.discriminator, fake)

    def codes_of(self, critic: Critic, fake: Tensor) -> Tensor:
        """Q's outputs for `fake`: those D's pass kept, else (D saw augmented images, or another network) a
        pass of their own."""
        kept = getattr(critic, "kept", None)
        return kept if kept is not None else self.discriminator.q(fake)

    # --- codes ---------------------------------------------------------------------------------------
    def sample_noise(self, n: int) -> Tensor:
        """Incompressible noise, uniform in [-1, 1] as in the authors' code."""
        return torch.rand(n, self.noise_dim, device=self.device) * 2 - 1

    def sample_codes(self, n: int, first: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(categorical values (n, #categorical) long, continuous codes (n, #continuous) in [-1, 1]);
        `first` fixes the values of the first categorical code."""
        categorical = torch.stack([torch.randint(0, k, (n,), device=self.device) for k in self.categorical_codes], 1) \
            if self.categorical_codes else torch.zeros(n, 0, dtype=torch.long, device=self.device)
        if first is not None:
            if not self.categorical_codes:
                raise UserError("This InfoGAN has no categorical code: it cannot draw samples for given labels.")
            categorical[:, 0] = first.to(self.device).long()
        continuous = torch.rand(n, self.continuous_codes, device=self.device) * 2 - 1
        return categorical, continuous

    def latent(self, noise: Tensor, categorical: Tensor, continuous: Tensor) -> Tensor:
        """G's input [z, one-hot codes, continuous codes]."""
        parts = [noise] + [F.one_hot(categorical[:, i], k).to(noise.dtype) for i, k in enumerate(self.categorical_codes)]
        return torch.cat(parts + [continuous.to(noise.dtype)], dim=1)

    def sample_latent(self, n: int, first: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(G's input, its categorical values, its continuous codes) for `n` random draws."""
        categorical, continuous = self.sample_codes(n, first)
        return self.latent(self.sample_noise(n), categorical, continuous), categorical, continuous

    def information(self, q: Tensor, categorical: Tensor, continuous: Tensor) -> dict[str, Tensor]:
        """L_I of the categorical and of the continuous codes from Q's outputs `q`, and the weighted term
        `loss` = -(info_weight * L_I(categorical) + continuous_weight * L_I(continuous)) that both players add."""
        n_cat, n_cont = sum(self.categorical_codes), self.continuous_codes
        info_cat = categorical_codes_information(q[:, :n_cat], categorical, self.categorical_codes)
        mean = q[:, n_cat:n_cat + n_cont]
        log_std = q[:, n_cat + n_cont:n_cat + 2 * n_cont] if self.learn_std else None
        info_cont = continuous_information(mean, continuous, log_std)
        loss = -(self.info_weight * info_cat + self.continuous_weight * info_cont)
        return {"categorical": info_cat, "continuous": info_cont, "loss": loss}

    # --- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """`n` images from G in eval mode with random codes; `labels`, if given, are the values of c1."""
        return self.generate(self.sample_latent(n, labels)[0])

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """G(z) in eval mode for full inputs z = [noise, codes], with the network that samples."""
        return self.run_inference(self.generator, z)

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """The random samples, and one grid per code as in the paper's figures 2 and 5: for a categorical
        code, row v has the code at value v and the columns are fixed noise draws; for a continuous code,
        row r is fixed noise (with c1 = r) and the columns sweep the code from -2 to 2, the other continuous
        codes at 0."""
        visuals = {"samples": (self.generate(self.fixed_z), self.grid_row)}
        cols = GRID_COLUMNS
        for i, k in enumerate(self.categorical_codes):
            categorical = self.grid_categorical.repeat(k, 1)
            categorical[:, i] = torch.arange(k, device=self.device).repeat_interleave(cols)
            z = self.latent(self.grid_noise.repeat(k, 1), categorical, self.grid_continuous.repeat(k, 1))
            visuals[f"c{i + 1}"] = (self.generate(z), cols)
        sweep = torch.linspace(-2, 2, cols, device=self.device)
        categorical = self.grid_categorical.repeat_interleave(cols, 0)
        if self.categorical_codes:  # row r has c1 = r
            categorical[:, 0] = torch.arange(cols, device=self.device).repeat_interleave(cols) % self.categorical_codes[0]
        for j in range(self.continuous_codes):
            continuous = torch.zeros(cols * cols, self.continuous_codes, device=self.device)
            continuous[:, j] = sweep.repeat(cols)
            z = self.latent(self.grid_noise.repeat_interleave(cols, 0), categorical, continuous)
            visuals[f"c{len(self.categorical_codes) + j + 1}"] = (self.generate(z), cols)
        return visuals

    # --- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """How well c1 names the classes, two ways:

        - `c1_accuracy`: `evaluator.samples_per_label` samples per value of c1 are classified by
          `evaluator.classifier`, and the best one-to-one matching of c1's values to classes gives the share
          it explains; `c1_to_class_<v>` is the class value v means. Draws under the current random state
          (the evaluator seeds it). Needs a classifier (metrics=digits).
        - `q_c1_accuracy`: c1 used as a classifier of real images, as the paper measures its "5% error":
          the most likely value of Q(c1 | x) for each labelled image of the reference split, matched to the
          labels in the same way. Needs labelled data.
        """
        if not self.categorical_codes:
            return {}
        scores = {}
        if evaluator.classifier is not None:
            accuracy, matching = best_matching(sampled_code_counts(self, evaluator, datamodule))
            scores |= {"c1_accuracy": accuracy} | {f"c1_to_class_{v}": float(k) for v, k in sorted(matching.items())}
        classes = datamodule.spec.num_classes
        if classes:
            counts = real_code_counts(self, evaluator, datamodule, classes)
            if counts.sum() > 0:
                scores["q_c1_accuracy"] = best_matching(counts)[0]
        return scores

    # --- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        self.log_step(self.run_update(self.adversarial_update, batch["image"]), shown=("d_loss", "g_loss", "info_loss"))

    def adversarial_update(self, real: Tensor) -> dict[str, Tensor]:
        """A D update, and every k-th batch a G update (replayed from a CUDA graph under engine.capture_step)."""
        opt_g, opt_d = self.optimizers()
        generator_due = self.generator_due()
        logs = self.discriminator_step(real, opt_d)
        if generator_due:
            logs |= self.generator_step(real, opt_g)
        return logs

    def discriminator_step(self, real: Tensor, opt_d) -> dict:
        """D ascends V(D, G) and, with Q, ascends lambda * L_I on the same fakes."""
        with torch.no_grad():
            z, categorical, continuous = self.sample_latent(real.size(0))
            fake = self.generator(z)
        critic = self.critic(fake)
        terms, real_scores, fake_scores = self.discriminator_terms(critic, real, fake)
        adversarial = sum(terms.values())
        info = self.information(self.codes_of(critic, fake), categorical, continuous)
        logs = self.update(opt_d, adversarial + info["loss"], "d_loss", [self.discriminator],
                           lambda: self.discriminator_logs(terms, real_scores, fake_scores, self.discriminator))
        self.discriminator_updated(self.discriminator)
        return logs | {"train/d_loss": adversarial.detach(), "train/info_loss": info["loss"].detach(),
                       "train/info_categorical": info["categorical"].detach(),
                       "train/info_continuous": info["continuous"].detach()}

    def generator_step(self, real: Tensor, opt_g) -> dict:
        """G descends its adversarial loss - lambda * L_I on fresh noise and codes (D and Q frozen)."""
        with self.toggled_optimizer(opt_g):
            z, categorical, continuous = self.sample_latent(real.size(0))
            fake = self.generator(z)
            critic = self.critic(fake)
            adversarial = self.generator_adversarial_loss(critic, fake, real)
            info = self.information(self.codes_of(critic, fake), categorical, continuous)
            logs = self.update(opt_g, adversarial + info["loss"], "g_loss", [self.generator])
        self.generator_updated()
        return logs | {"train/g_loss": adversarial.detach(), "train/g_info_loss": info["loss"].detach()}
