"""Config validation.

Two layers, both structured-config schemas:
- the top-level keys of each command are dataclasses stored in Hydra's ConfigStore, so Hydra rejects a
  wrong type or unknown key while composing;
- every node with a `_target_` is checked against a schema derived from the target's own signature
  (argument names and type hints). Adding a model, loss or dataset therefore needs no schema edits, and
  a typo anywhere (`model.generator.ngff=32`, `+trainer.max_epoch=3`) fails before anything is built;
- numbers are checked against the ranges their type hints declare (gan_cli.config.ranges:
  `batch_size: PositiveInt`, `decay: Decay`, ...), and those written there for torch's optimizers and
  Lightning's Trainer: `data.batch_size=0` or `trainer.max_epochs=0` is refused before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.utils import get_method
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, InterpolationKeyError, OmegaConfBaseException, ValidationError

from gan_cli.config.ranges import NOTHING_TO_TRAIN, THIRD_PARTY, broken, constraints
from gan_cli.config.resolvers import register_resolvers
from gan_cli.errors import UserError

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


@dataclass
class MetricsConfig:
    """The `metrics` group (conf/metrics/): what gan_cli.evaluation.Evaluator and QualityMetrics take."""

    feature_net: Any = None          # a _target_ node: the network whose features FID and KID use
    classifier: Any = None           # a _target_ node with logits: label accuracy of conditional models
    weights_path: Optional[str] = None       # the InceptionV3 weights file (metrics=inception)
    classifier_ckpt: Optional[str] = None    # a gan-train model=classifier checkpoint (metrics=digits)
    scores: list[str] = field(default_factory=lambda: ["fid", "kid", "is"])  # IS needs a net with logits
    every_n_epochs: int = 1          # evaluate during training every N epochs (and after the last); 0: last only
    num_samples: int = 10000         # generated images per evaluation
    samples_per_label: int = 100     # per label, for the label accuracy of conditional models
    batch_size: int = 100
    reference_split: str = "test"    # the real images the samples are compared with
    reference_size: Optional[int] = None     # null: the whole split; N: a fixed random N of them
    kid_subset_size: int = 1000      # capped at the number of samples
    seed: int = 0                    # of the noise and labels drawn for an evaluation


@dataclass
class TrainConfig:
    model: Any = MISSING
    data: Any = MISSING
    loss: Any = None
    metrics: Optional[MetricsConfig] = None
    tricks: Any = None               # name -> trick node (conf/tricks/), e.g. tricks=[ema,r1]
    text_encoder: Any = None         # a _target_ node: turns captions into embeddings (conf/text_encoder/)
    trainer: Any = MISSING
    engine: Any = None               # a _target_ node: gan_cli.callbacks.engine.Engine (conf/engine/)
    callbacks: Any = field(default_factory=dict)
    logger: Any = field(default_factory=dict)
    paths: Any = MISSING
    task_name: str = "train"
    seed: Optional[int] = 42
    ckpt_path: Optional[str] = None
    init_from: Optional[str] = None  # fine-tune from these weights (gan_cli/fine_tuning.py)
    freeze_d: int = 0                # FreezeD: the discriminators' first N layers stay as init_from has them
    optimized_metric: Optional[str] = None
    optimized_direction: str = "minimize"


@dataclass
class SampleConfig:
    ckpt_path: str = MISSING
    num_samples: int = 64
    output: str = "samples.png"
    label: Optional[int] = None
    nrow: Optional[int] = None
    seed: Optional[int] = 0
    device: str = "cpu"
    chain: bool = False
    gibbs_steps: Optional[int] = None
    text: Optional[str] = None       # a caption for a text-to-image model (model=text_cgan, stackgan)
    text_file: Optional[str] = None  # a file of captions, one a line
    interpolate: Optional[int] = None  # K: walks of K images between latent points (a row each, or output=X.gif)
    truncation: Optional[float] = None  # psi: z truncated to [-psi, psi]; stylegan2: w_avg + psi (w - w_avg)


@dataclass
class TranslateConfig:
    ckpt_path: str = MISSING
    input: str = MISSING
    output: str = MISSING
    direction: str = "AtoB"
    inference: Optional[str] = None
    device: str = "cpu"


@dataclass
class BlendConfig:
    ckpt_path: Optional[str] = None
    src: str = MISSING
    dst: str = MISSING
    mask: str = MISSING
    output: str = "blended.png"
    levels: Optional[int] = None
    beta: float = 1.0
    sigma: float = 0.5
    form: str = "paper"
    details: bool = True
    device: str = "cpu"


@dataclass
class ExportConfig:
    ckpt_path: str = MISSING
    output: str = MISSING            # the folder to write (new or empty)
    num_samples: int = 64            # in the card's sample grid
    seed: int = 0
    repo_id: Optional[str] = None    # owner/name: the card's examples say ckpt_path=hf://owner/name


@dataclass
class EvalConfig:
    ckpt_path: Optional[str] = None  # a checkpoint to score; or fake= (a folder of images)
    fake: Optional[str] = None       # a folder of images to score against real=
    real: Optional[str] = None       # a folder of real images, or train / test: that split of data=
    data: Any = None                 # the dataset of real=train|test (a data group choice)
    image_size: Optional[int] = None  # the folders' images resized to it (null: the first generated image's size)
    cache_dir: Optional[str] = None  # where the real images' features are kept between evaluations (null: never)
    metrics: Optional[MetricsConfig] = None
    seeds: list[int] = field(default_factory=lambda: [0])
    num_samples: Optional[int] = None
    output: Optional[str] = None
    device: str = "cpu"


def register_schemas() -> None:
    """Store the command schemas and register the config resolvers (before any config is composed)."""
    register_resolvers()
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="sample_schema", node=SampleConfig)
    store.store(name="translate_schema", node=TranslateConfig)
    store.store(name="blend_schema", node=BlendConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="export_schema", node=ExportConfig)


# --- `_target_` nodes ----------------------------------------------------------------------------
def validate_targets(cfg: DictConfig) -> None:
    """Check every `_target_` node of `cfg` against its target's signature; raise UserError on a mistake."""
    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except InterpolationKeyError as err:
        key = getattr(err, "full_key", None) or "?"
        raise UserError(
            f"The config value {key} refers to a key this config does not have ({_first_line(err)}). The chosen "
            "groups probably do not fit together: e.g. model=cyclegan and model=pix2pix need image-pair data "
            "(data=horse2zebra, data=facades, data=unpaired_folder, ...), the other models single images."
        ) from err
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise UserError(
            f"The config value {key} is missing or cannot be resolved ({_first_line(err)}). "
            f"Set it on the command line, e.g. {key}=..."
        ) from err
    # the groups the model's settings are interpolated from first, so that a bad value is named where it was set
    for key in sorted(container, key=lambda k: k == "model"):
        _walk(container[key], key)


def _walk(node: Any, path: str) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            _check_node(node, path)
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]")


def _check_node(node: dict, path: str) -> None:
    target = node["_target_"]
    try:
        obj = get_method(target) if isinstance(target, str) else target
    except Exception as err:
        raise UserError(f"{path}._target_={target} cannot be imported ({_first_line(err)}). Check the spelling.") from err
    schema, takes_any_key = _schema_for(obj)
    values = {k: v for k, v in node.items() if k not in _HYDRA_KEYS}
    names = {f.name for f in dataclasses.fields(schema)}
    unknown = [k for k in values if k not in names]
    if unknown and not takes_any_key:
        raise UserError(
            f"Unknown config key {path}.{unknown[0]} ({target} has no argument {unknown[0]!r}). "
            f"Valid keys of {path}: {', '.join(sorted(names)) or 'none'}."
        )
    known = {k: (None if isinstance(v, dict) and "_target_" in v else v) for k, v in values.items() if k in names}
    try:
        OmegaConf.merge(OmegaConf.structured(schema), known)
    except ValidationError as err:
        key = f"{path}.{err.full_key}" if getattr(err, "full_key", None) else path
        raise UserError(f"Invalid config value {key}: {_first_line(err)}. Fix it with {key}=<value>.") from err
    except ConfigKeyError as err:  # pragma: no cover - unknown keys are caught above
        raise UserError(f"Invalid config key under {path}: {_first_line(err)}") from err
    _check_ranges(target, _ranges_for(obj, target), known, path)


def _check_ranges(target: Any, ranges: dict[str, Any], values: dict[str, Any], path: str) -> None:
    """Refuse a number out of the range its hint declares, or one that would make a run train nothing."""
    for key, value in values.items():
        useless = NOTHING_TO_TRAIN.get((target, key)) if isinstance(target, str) else None
        if useless is not None and value == useless[0]:
            raise UserError(f"Invalid config value {path}.{key}={value}: {useless[1]}.")
        bounds = broken(value, ranges[key]) if key in ranges else None
        if bounds:
            each = "each value " if isinstance(value, (list, tuple)) else ""
            raise UserError(f"Invalid config value {path}.{key}={value}: {each}must be {bounds}. Give one that is "
                            f"{bounds}: {path}.{key}=...")


@functools.lru_cache(maxsize=None)
def _ranges_for(obj: Any, target: Any) -> dict[str, Any]:
    """{argument: hint} of the arguments of `obj` whose hints declare a range."""
    declared = THIRD_PARTY.get(target) if isinstance(target, str) else None
    if declared is None:
        try:
            declared = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj, include_extras=True)
        except Exception:
            declared = {}
    return {name: hint for name, hint in declared.items() if constraints(hint)}


@functools.lru_cache(maxsize=None)
def _schema_for(obj: Any) -> tuple[type, bool]:
    """A dataclass with one field per argument of `obj` (type-checked where OmegaConf supports the hint)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return dataclasses.make_dataclass(f"{getattr(obj, '__name__', 'Target')}Schema", []), True
    try:
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:
        hints = {}
    fields, takes_any_key = [], False
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            takes_any_key = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        fields.append((name, _supported(hints.get(name, Any)), field(default=MISSING)))
    name = f"{getattr(obj, '__name__', 'Target')}"
    return dataclasses.make_dataclass(name, fields), takes_any_key


def _supported(hint: Any) -> Any:
    """The hint if OmegaConf can validate it (int, float, bool, str, Optional and lists of those), else Any."""
    if typing.get_origin(hint) is typing.Annotated:  # a range (checked by _check_ranges): the type within
        return _supported(typing.get_args(hint)[0])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = _supported(rest[0])
            return Any if inner is Any else Optional[inner]
        return Any
    if hint in (int, float, bool, str):
        return hint
    return Any


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
