"""The command-line entry points: one small Hydra main per command."""

from __future__ import annotations

import signal
import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from gan_cli.config.overrides import unknown_override
from gan_cli.config.schemas import (
    BlendConfig,
    EvalConfig,
    ExportConfig,
    SampleConfig,
    TrainConfig,
    TranslateConfig,
    register_schemas,
)
from gan_cli.errors import RunInterrupted, UserError, user_message
from gan_cli.sweeps.summary import check_metric_is_logged, in_sweep, job_failed, sweep_value

register_schemas()


def _fail(error: BaseException) -> None:
    """Show a user's mistake as one paragraph and exit non-zero (a run stopped by a signal: 128 + its number); in
    a sweep, log it as the job's failure and let the other jobs go on."""
    if in_sweep() and not isinstance(error, RunInterrupted):  # a signal stops the whole sweep
        job_failed(error, with_traceback=False)
        return
    print(f"\ngan-cli error: {user_message(error)}\n", file=sys.stderr, flush=True)
    sys.exit(getattr(error, "exit_code", 1))


def train_main() -> None:
    """The console script gan-train: names mistyped groups and keys, then runs Hydra."""
    _check_names(TrainConfig)
    _register_sweepers()
    _train()


def _register_sweepers() -> None:
    """Make gan-cli's sweeper (hydra_plugins/gan_cli_sweepers) known to Hydra, which finds plugins by scanning the
    hydra_plugins folders of sys.path and does not see those of an editable install."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.gan_cli_sweepers.optuna_search import OptunaSearch

    Plugins.instance().class_name_to_class[f"{OptunaSearch.__module__}.{OptunaSearch.__name__}"] = OptunaSearch


def _check_names(schema: type) -> None:
    """Stop with one paragraph on a mistyped config group or key, before Hydra reads the command line."""
    error = unknown_override(sys.argv[1:], schema)
    if error is not None:
        _fail(error)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _train(cfg: DictConfig) -> float | None:
    """gan-train: train the model that the config describes.

    Returns optimized_metric for sweepers. In a sweep, a job that fails for any reason returns None (see
    gan_cli.sweeps.summary), so the sweep records it as failed and goes on; a single run fails as usual.
    """
    from pytorch_lightning.utilities.exceptions import SIGTERMException  # heavy imports after Hydra has parsed

    from gan_cli.commands.train import metric_value, train

    try:
        check_metric_is_logged(cfg)
        name = cfg.get("optimized_metric")
        return sweep_value(metric_value(train(cfg), name), name)
    except (UserError, InstantiationException) as error:
        _fail(error)
    except SIGTERMException:  # Lightning's own stop on a SIGTERM before gan-train's handler was in place
        sys.exit(128 + signal.SIGTERM)
    except Exception as error:
        if not in_sweep():
            raise
        job_failed(error, with_traceback=True)
    return None


def sample_main() -> None:
    """The console script gan-sample: names mistyped groups and keys, then runs Hydra."""
    _check_names(SampleConfig)
    _sample()


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def _sample(cfg: DictConfig) -> None:
    """gan-sample: draw images from a trained model."""
    from gan_cli.commands.sample import sample

    try:
        written = sample(cfg)
        print(f"Wrote {written}")
    except (UserError, InstantiationException) as error:
        _fail(error)



def translate_main() -> None:
    """The console script gan-translate: names mistyped groups and keys, then runs Hydra."""
    _check_names(TranslateConfig)
    _translate()


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def _translate(cfg: DictConfig) -> None:
    """gan-translate: translate a folder of images with a pix2pix or CycleGAN checkpoint."""
    from gan_cli.commands.translate import translate

    try:
        translate(cfg)
    except (UserError, InstantiationException) as error:
        _fail(error)


def blend_main() -> None:
    """The console script gan-blend: names mistyped groups and keys, then runs Hydra."""
    _check_names(BlendConfig)
    _blend()


@hydra.main(version_base="1.3", config_path="conf", config_name="blend")
def _blend(cfg: DictConfig) -> None:
    """gan-blend: blend a masked region of one image into another (GP-GAN, or Poisson without a checkpoint)."""
    from gan_cli.commands.blend import run_blend

    try:
        run_blend(cfg)
    except (UserError, InstantiationException) as error:
        _fail(error)


def eval_main() -> None:
    """The console script gan-eval: names mistyped groups and keys, then runs Hydra."""
    _check_names(EvalConfig)
    _eval()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def _eval(cfg: DictConfig) -> None:
    """gan-eval: score a checkpoint, or a folder of images, and record how."""
    from gan_cli.commands import evaluate, evaluate_folders

    try:
        if (cfg.ckpt_path is None) == (cfg.fake is None):
            raise UserError("gan-eval scores a checkpoint (ckpt_path=PATH) or a folder of images (fake=DIR real=DIR, "
                            "or fake=DIR real=test data=mnist_5k): give one of ckpt_path= and fake=.")
        if cfg.ckpt_path is not None:
            print(evaluate.report(*evaluate.evaluate(cfg)))
        else:
            print(evaluate_folders.report(*evaluate_folders.evaluate_folders(cfg)))
    except (UserError, InstantiationException) as error:
        _fail(error)


def export_main() -> None:
    """The console script gan-export: names mistyped groups and keys, then runs Hydra."""
    _check_names(ExportConfig)
    _export()


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def _export(cfg: DictConfig) -> None:
    """gan-export: a checkpoint as a folder to share (safetensors, config, model card)."""
    from gan_cli.commands.export import export

    try:
        print(f"Exported to {export(cfg)} (share it: hf upload owner/name {cfg.output})")
    except (UserError, InstantiationException) as error:
        _fail(error)
