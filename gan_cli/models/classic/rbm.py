"""`model=rbm`: a Bernoulli restricted Boltzmann machine trained by contrastive divergence (Hinton 2002,
CD-k) or persistent CD (Tieleman 2008), with the momentum and weight decay of Hinton's practical guide (2012).

The CD update is written directly (Lightning's manual optimisation): each parameter's .grad is set to
minus the CD estimate and a torch.optim.SGD step applies it, so momentum and weight decay are SGD's own
(W only; biases without) and their state is in every checkpoint. When a loaded batch is split into several
updates (cd_batch_size), all but the last apply the same SGD step in place (RBMNet.sgd_step). With
momentum 0 and weight decay 0 one step is exactly the lecture's
dW = eta (v h' - v~ h~') / N, db = eta (v - v~) / N, dc = eta (h - h~) / N.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from gan_cli.config.ranges import PositiveFloat, PositiveInt
from gan_cli.errors import UserError
from gan_cli.models.base import GenerativeModule
from gan_cli.models.classic.rbm_nets import RBMNet, bernoulli, momentum_at, set_momentum
from gan_cli.models.classic.rbm_shared import (VisibleCoding, check_cd_settings, data_logits, dataset_images,
                                               filter_images, momentum_optimizer, rbm_scores,
                                               save_plain_hyperparameters)
from gan_cli.models.contract import Sampler, SelfEvaluating

log = logging.getLogger(__name__)

# --- the model ----------------------------------------------------------------------------------------
class RBM(GenerativeModule, Sampler, SelfEvaluating):
    """A Bernoulli RBM on the pixels of the data's images (C*H*W visible units, `hidden` hidden units).

    - `k`: Gibbs steps per update (CD-k); `persistent=true`: the chains continue from one update to the
      next (PCD) instead of restarting at the data. The chains' binary hidden states (one chain per image
      of a batch, `chains`) are a buffer, so checkpoints and resumed runs carry them.
    - `reconstruction`: v~ in the statistics is the last Gibbs step's probabilities ("probabilities",
      Hinton's guide) or its binary sample ("sample", as scikit-learn's BernoulliRBM).
    - momentum `initial_momentum` for the first `momentum_epochs` epochs, then `final_momentum`;
      `weight_decay` on W only.
    - `init_visible_bias`: b starts at the log-odds of each pixel being on in the training images
      (Hinton's guide, section 8) rather than at 0.
    - `cd_batch_size`: images per CD update. Each loaded batch is split into updates of this size, so a
      large data.batch_size with a small cd_batch_size (scikit-learn's default is 10) runs many small
      updates per training step, paying the framework's per-step cost once per batch. Lightning's
      global_step counts loaded batches, not updates.
    - `gibbs_steps`: the length of the chains that draw samples (sample(), the logged sample grid).
    - `monitor_size`: training images (a fixed subset) whose scores are compared with the held-out
      ones (the free-energy gap, Hinton's guide section 6).
    """

    sample_options = ("gibbs_steps",)

    def __init__(self, channels: PositiveInt, image_size: PositiveInt, mean, std, hidden: int = 256,
                 lr: PositiveFloat = 0.1, k: int = 1, persistent: bool = False, chains: int = 32,
                 reconstruction: str = "probabilities", weight_decay: float = 2e-4, initial_momentum: float = 0.5,
                 final_momentum: float = 0.9, momentum_epochs: int = 5, binarize: str = "none", init_std: float = 0.01,
                 init_visible_bias: bool = True, gibbs_steps: int = 1000, monitor_size: int = 500,
                 cd_batch_size: int | None = None) -> None:
        super().__init__()
        check_cd_settings(lr, k, weight_decay, initial_momentum, final_momentum, momentum_epochs, binarize, init_std,
                          reconstruction)
        if hidden < 1:
            raise UserError(f"model.hidden={hidden}: give the number of hidden units, 1 or more (e.g. 256).")
        if persistent and chains < 1:
            raise UserError(f"model.chains={chains}: persistent CD keeps one chain per batch image; give 1 or more "
                            "(the default is data.batch_size).")
        if gibbs_steps < 1:
            raise UserError(f"model.gibbs_steps={gibbs_steps}: the Gibbs steps of a sampling chain, 1 or more "
                            "(e.g. 1000).")
        if monitor_size < 1:
            raise UserError(f"model.monitor_size={monitor_size}: training images compared with held-out ones, "
                            "1 or more.")
        if cd_batch_size is not None and cd_batch_size < 1:
            raise UserError(f"model.cd_batch_size={cd_batch_size}: the images of one CD update, 1 or more (null: "
                            "the whole loaded batch).")
        self.automatic_optimization = False
        save_plain_hyperparameters(self, mean, std)
        self.coding = VisibleCoding(channels, image_size, mean, std, binarize)
        self.rbm = RBMNet(self.coding.units, hidden, init_std)
        self.lr, self.k, self.persistent, self.reconstruction = lr, k, persistent, reconstruction
        self.weight_decay, self.momentum = weight_decay, (initial_momentum, final_momentum, momentum_epochs)
        self.gibbs_steps, self.monitor_size, self.init_visible_bias = gibbs_steps, monitor_size, init_visible_bias
        self.cd_batch_size = cd_batch_size
        self.register_buffer("started", torch.tensor(False))  # set once training has begun (and b was set)
        if persistent:
            self.register_buffer("chains", torch.zeros(chains, hidden))  # hidden states, as scikit-learn
            self.register_buffer("chains_started", torch.tensor(False))
        self.val_scores = nn.ModuleDict({name: MeanMetric() for name in ("pll", "free_energy", "recon_error")})
        self._monitor: Tensor | None = None  # the training subset's images (fixed), loaded when first needed

    # --- training ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        return momentum_optimizer(self.rbm, self.lr, self.weight_decay, self.momentum[0])

    def on_fit_start(self) -> None:
        # after a checkpoint's state is restored: a resumed run keeps its learned biases
        if self.init_visible_bias and not self.started:
            images = dataset_images(self.trainer.datamodule.train_set).to(self.device)
            self.rbm.b.data.copy_(data_logits(self.coding, images))
        self.started.fill_(True)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        visible = self.coding.visible(batch["image"], draw=True)
        optimizer = self.optimizers()
        momentum = momentum_at(self.current_epoch, *self.momentum)
        set_momentum(optimizer.optimizer, momentum)
        updates = visible.split(self.cd_batch_size or len(visible))
        for i, v in enumerate(updates):
            both, logits, probs, following = self.rbm.negative_phase(v, self.k, self.reconstruction,
                                                                     self.chain_state(v))
            if i < len(updates) - 1:  # in place, as the torch optimizer's own step would (see RBMNet.sgd_step)
                self.rbm.sgd_step(optimizer.optimizer, both, probs)
            else:  # the batch's last update goes through Lightning's optimizer, which counts it (global_step)
                difference = self.rbm.free_energy_difference(both, logits)  # a NaN in any update reaches this one
                self.rbm.set_statistics(both, probs)
                optimizer.step()
            if self.persistent:
                self.chains[:len(v)] = following
        self.track_finite("free_energy_difference", difference)
        if self.logs_this_step:
            with torch.no_grad():
                recon = (self.rbm.reconstruct(v) - v).pow(2).mean()
            self.log_dict({"train/recon_error": recon, "train/free_energy_difference": difference,
                           "train/momentum": momentum}, prog_bar=False)

    def chain_state(self, v: Tensor) -> Tensor | None:
        """Where the negative phase starts: None for CD-k (at the data), or the binary hidden states of the
        persistent chains (PCD), which begin at a draw from p(h | v) of the first batch."""
        if not self.persistent:
            return None
        if len(v) > len(self.chains):
            raise UserError(f"model.chains={len(self.chains)} persistent chains, but CD updates of {len(v)} images: set "
                            f"model.chains to model.cd_batch_size ({len(v)}).")
        if not self.chains_started:
            first = v[torch.arange(len(self.chains), device=v.device) % len(v)]
            with torch.no_grad():
                self.chains.copy_(bernoulli(self.rbm.hidden_probs(first)))
            self.chains_started.fill_(True)
        return self.chains[:len(v)]

    # --- held-out scores -----------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        scores = rbm_scores(self.rbm, self.coding.visible(batch["image"], draw=False))
        for name, values in scores.items():
            self.val_scores[name].update(values)

    def on_validation_epoch_end(self) -> None:
        held_out = {name: metric.compute() for name, metric in self.val_scores.items()}
        for metric in self.val_scores.values():
            metric.reset()
        train = self.mean_scores(self.monitor_images(self.trainer.datamodule))
        self.log_dict({"val/pll": held_out["pll"], "val/recon_error": held_out["recon_error"],
                       "val/free_energy": held_out["free_energy"], "train/pll": train["pll"],
                       "train/free_energy": train["free_energy"],
                       "val/free_energy_gap": held_out["free_energy"] - train["free_energy"]}, prog_bar=False)
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            log.info("Epoch %d: held-out pseudo-log-likelihood %.2f (training subset %.2f), free-energy gap %.2f, "
                     "reconstruction error %.4f", self.current_epoch, held_out["pll"], train["pll"],
                     held_out["free_energy"] - train["free_energy"], held_out["recon_error"])

    def mean_scores(self, images: Tensor) -> dict[str, Tensor]:
        v = self.coding.visible(images.to(self.device), draw=False)
        return {name: values.mean() for name, values in rbm_scores(self.rbm, v).items()}

    def monitor_images(self, datamodule) -> Tensor:
        """The fixed training subset of `monitor_size` images (Hinton's guide: as many as held out)."""
        if self._monitor is None:
            train_set = getattr(datamodule, "train_set", None)
            self._monitor = dataset_images(train_set if train_set is not None else datamodule.build("train"),
                                           self.monitor_size)
        return self._monitor

    def evaluation_scores(self, evaluator, datamodule) -> dict[str, float]:
        """gan-eval: the held-out pseudo-log-likelihood, reconstruction error and free energy (on the
        evaluator's reference split), and the free-energy gap to a fixed training subset."""
        held_out = self.mean_scores(dataset_images(datamodule.build(evaluator.reference_split)))
        train = self.mean_scores(dataset_images(datamodule.build("train"), self.monitor_size))
        return {"pseudo_log_likelihood": float(held_out["pll"]), "recon_error": float(held_out["recon_error"]),
                "free_energy": float(held_out["free_energy"]), "train_pseudo_log_likelihood": float(train["pll"]),
                "free_energy_gap": float(held_out["free_energy"] - train["free_energy"])}

    # --- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, gibbs_steps: int | None = None) -> Tensor:
        """n images from Gibbs chains of `gibbs_steps` steps (default: model.gibbs_steps) started at random
        binary states; each image is its chain's last p(v | h). In the data's normalised space."""
        if labels is not None:
            raise UserError("model=rbm is not class-conditional: it draws digits of all classes. Leave label= out.")
        return self.coding.images(self.chain_path(n, [gibbs_steps or self.gibbs_steps])[-1])

    def chain_path(self, n: int, steps: list[int]) -> list[Tensor]:
        """p(v | h) of n chains from random starts after each number of Gibbs steps in `steps` (increasing)."""
        v = bernoulli(torch.full((n, self.coding.units), 0.5, device=self.device))
        done, path = 0, []
        for total in steps:
            v, probs = self.rbm.gibbs(v, total - done)
            done = total
            path.append(probs)
        return path

    @torch.no_grad()
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """The filters (W's columns as images), 64 samples after gibbs_steps, and 8 chains at 8 points
        along the way (1 step to gibbs_steps, geometrically spaced). Drawn from a fixed seed in a forked
        random state, so the grids of successive epochs compare and training's draws are untouched."""
        steps = sorted({max(1, round(self.gibbs_steps ** (j / 7))) for j in range(8)})
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(0)
            path = self.chain_path(64, steps)
        chains = torch.stack([p[:8] for p in path], 1).flatten(0, 1)  # row r: chain r at each point
        return {"filters": (filter_images(self.rbm.W, self.coding), 8),
                "samples": (self.coding.images(path[-1]), 8),
                "gibbs_chains": (self.coding.images(chains), len(path))}
