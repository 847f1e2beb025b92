"""What every gan-cli model shares: the run's config in its checkpoints, named images to show, a
non-finite-loss guard that stops training before a bad checkpoint is written, the shared update, and Lightning's
step counters for models and callbacks (whether this batch is a log step, how many batches have been trained)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from gan_cli import __version__
from gan_cli.checkpoint import first_non_finite
from gan_cli.errors import NonFiniteLossError
from gan_cli.lightning_state import batches_stepped, logs_this_step

if TYPE_CHECKING:
    from gan_cli.models.step_capture import CapturedStep


class GenerativeModule(pl.LightningModule):
    """Base of all models.

    Subclasses implement `visuals()` (named image batches, shown as grids by the SampleGrid callback)
    and call `track_finite()` on every loss they optimise. What a model can do besides training (draw
    samples, translate, classify, ...) is declared by the capabilities of gan_cli.models.contract.
    """

    #: why a model that draws no images from noise has nothing for gan-sample, and what to use instead
    no_samples_reason: str = ""

    def __init__(self) -> None:
        super().__init__()
        #: the resolved run config (plain containers) stored in every checkpoint, set by gan-train
        self.run_config: dict | None = None
        #: whether this batch is a log step, decided once per batch (`on_train_batch_start`): only then are the
        #: values that cost extra work (gradient norms, D's mean scores, accuracies) computed and logged
        self.logs_this_step = False
        self._first_bad_step: dict[str, Tensor] = {}  # loss name -> first non-finite step (-1: none)
        #: set by engine.capture_step on a GPU: run_update replays the updates from CUDA graphs
        self.step_capture: CapturedStep | None = None

    # --- what the model shows ----------------------------------------------------------------------
    def visuals(self) -> dict[str, tuple[Tensor, int]]:
        """Named image batches (in data space) with the number of images per grid row."""
        return {}

    # --- the networks (what engine.compile compiles) ----------------------------------------------
    def networks(self) -> list[nn.Module]:
        """The networks the training step calls: by default the direct sub-modules that hold parameters."""
        return [child for child in self.children() if any(True for _ in child.parameters())]

    def compile_refusal(self) -> str:
        """Why this model cannot train with compiled networks (engine.compile), or "" if it can."""
        return ""

    # --- the update, captured in a CUDA graph (engine.capture_step) ---------------------------------
    #: whether the training step makes its whole update through `run_update`, keeping no other host state
    captures_update: bool = False
    #: integer attributes the update advances on the host (replayed updates advance them by as much)
    captured_counters: tuple[str, ...] = ()

    def capture_refusal(self) -> str:
        """Why this model's update cannot be captured in a CUDA graph (engine.capture_step), or "" if it can."""
        if not self.captures_update:
            return "its training step does not run its update through run_update, so nothing in it can be replayed."
        return ""

    def capture_key(self) -> tuple:
        """What decides which updates this step makes (one graph is captured per value)."""
        return ()

    def run_update(self, update: Callable[..., dict[str, Tensor]], *inputs: Tensor | None) -> dict[str, Tensor]:
        """`update(*inputs)`: the part of the training step that changes the weights, returning what the step
        logs. Under engine.capture_step on a GPU it is replayed from a CUDA graph (gan_cli.models.step_capture)."""
        if self.step_capture is None:
            return update(*inputs)
        return self.step_capture.run(self, update, inputs)

    # --- non-finite losses -------------------------------------------------------------------------
    def track_finite(self, name: str, loss: Tensor) -> None:
        """Remember the first step at which `loss` stopped being finite, without a device sync (in place, so that
        a replayed CUDA graph records it too)."""
        first = self._first_bad_step.get(name)
        if first is None:
            first = self._first_bad_step[name] = torch.full((), -1, dtype=torch.long, device=loss.device)
        step = self.step_capture.step_number if self.step_capture is not None else self.batches_seen
        bad = ~torch.isfinite(loss.detach())
        first.copy_(torch.where(bad & (first < 0), step, first))

    def check_finite(self) -> None:
        """Raise (syncing with the device) if any tracked loss has been non-finite."""
        bad = {name: int(step) for name, step in self._first_bad_step.items()}
        bad = {name: step for name, step in bad.items() if step >= 0}
        if not bad:
            return
        step = min(bad.values())
        raise NonFiniteLossError(
            f"Training stopped: the loss {' and '.join(sorted(bad))} became non-finite (NaN or inf) at "
            f"training step {step} (counted in batches, epoch {self.current_epoch}). {self.nothing_saved()}")

    def check_finite_state(self, checkpoint: dict) -> None:
        """Raise if a weight, a buffer (batch-norm statistics) or an optimizer state about to be saved holds a
        NaN or an infinity, though the losses were finite."""
        bad = first_non_finite({key: checkpoint.get(key) for key in ("state_dict", "optimizer_states")})
        if bad is not None:
            raise NonFiniteLossError(
                f"Training stopped at training step {self.batches_seen} (counted in batches, epoch "
                f"{self.current_epoch}), as its checkpoint was about to be written: {bad} holds NaN or infinite "
                f"values, though the losses were finite (batch-norm statistics or optimizer moments can overflow "
                f"that way). {self.nothing_saved()}")

    def nothing_saved(self) -> str:
        """What a diverged run leaves behind, and what to do: the last good checkpoint, if there is one."""
        last = Path(self.trainer.default_root_dir) / "checkpoints" / "last.ckpt" if self._trainer is not None else None
        if last is not None and last.is_file():
            where = (f"No checkpoint of that state was written; the last good one is {last}. Lower the learning "
                     f"rate (model.lr=...) or try another loss (loss=...), and resume with ckpt_path={last}.")
        else:
            where = ("No checkpoint of that state was written, and the run has no earlier one. Lower the learning "
                     "rate (model.lr=...) or try another loss (loss=...), and start again.")
        return where

    # --- updates -----------------------------------------------------------------------------------
    def update(self, optimizer, loss: Tensor | dict[str, Tensor], name: str, nets: list[nn.Module],
               gradient_logs: Callable[[], dict[str, Tensor]] | None = None) -> dict[str, Tensor]:
        """One update of `nets` on `loss` (the shared update every model makes): zero the gradients, backward,
        step. `loss` may be named terms, which are summed and each logged as train/<term>. Returns the loss to
        log as train/<name>, and on log steps what `gradient_logs()` gives after the backward pass (by default
        the gradient norm of `nets`)."""
        terms = loss if isinstance(loss, dict) else {}
        loss = sum(terms.values()) if terms else loss
        self.track_finite(name, loss)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        logs = {f"train/{name}": loss.detach()} | {f"train/{term}": value.detach() for term, value in terms.items()}
        if self.logs_this_step:
            logs |= gradient_logs() if gradient_logs is not None else {
                f"train/grad_norm_{name[0].upper()}": torch.linalg.vector_norm(
                    torch.stack([grad_norm(net) for net in nets]))}
        optimizer.step()
        return logs

    # --- Lightning's step counters -------------------------------------------------------------------
    @property
    def batches_seen(self) -> int:
        """Training batches processed in this run so far (restored on resume): the x-axis of the logged
        scalars, as Lightning counts it for log_every_n_steps."""
        return batches_stepped(self.trainer) if self._trainer is not None else 0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.logs_this_step = self._trainer is not None and logs_this_step(self.trainer)
        if self.logs_this_step:
            self.check_finite()

    def on_train_epoch_end(self) -> None:
        self.check_finite()

    # --- checkpoints -------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.check_finite()  # never write a checkpoint of diverged weights
        self.check_finite_state(checkpoint)
        checkpoint["gan_cli"] = {"config": self.run_config, "version": __version__}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is None:  # a resumed run keeps its own settings: its checkpoints state what ran
            self.run_config = checkpoint.get("gan_cli", {}).get("config")


def grad_norm(module: nn.Module) -> Tensor:
    """The 2-norm of all gradients of `module`, as one tensor."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
