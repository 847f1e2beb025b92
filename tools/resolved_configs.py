"""The resolved config of every model with its default data, and of every option of the other config groups,
written to a JSON file or checked against one: a change that moves code must leave what runs unchanged, and a
change to what runs rewrites the file on purpose.

    python tools/resolved_configs.py write FILE    compose them all now and write FILE
    python tools/resolved_configs.py check FILE    compose them all now and compare with FILE, where every
                                                   `_target_` of FILE is first mapped through FILE's "moved"
                                                   table (module paths moved since it was written, longest
                                                   prefix first); exit 1 on a difference, naming each one

Each entry is `gan-train <overrides>` composed as the command line would (no objects are built), its `_target_`s
checked against their signatures as gan-train checks them (a failure is recorded as the entry's error), resolved,
with the run's output folder fixed and without the `hydra` node (its callbacks are kept: they name code).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: groups whose every option is composed on top of model=dcgan data=mnist_5k (the default job, `gan-train` with no
#: arguments, has an entry of its own)
GROUPS = ("loss", "data", "tricks", "metrics", "text_encoder", "callbacks", "logger", "trainer", "strategy",
          "experiment", "debug", "launcher", "hparams_search")


#: options whose resolved values depend on the machine (absolute paths, whether the user has a W&B account)
MACHINE_DEPENDENT = {("logger", "wandb"), ("logger", "mlflow"), ("logger", "many")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if (group, p.stem) not in MACHINE_DEPENDENT)


def runs() -> dict[str, list[str]]:
    """name -> gan-train overrides (translation data with the model of its layout, experiments with their own, the
    rest with model=dcgan)."""
    chosen = {"default job": [], **{f"model={m}": [f"model={m}"] for m in options("model")}}
    for group in GROUPS:
        for option in options(group):
            value = f"[{option}]" if group == "tricks" else option
            model = translation_model(group, option) or ([] if group == "experiment" else ["model=dcgan"])
            chosen[f"{group}={option}"] = [*model, f"{group}={value}"]
    return chosen


def translation_model(group: str, option: str) -> list[str]:
    """model=cyclegan or model=pix2pix for an unpaired or paired translation data option, else nothing."""
    if group != "data":
        return []
    text = (ROOT / "conf" / "data" / f"{option}.yaml").read_text()
    if "unpaired_folder" in text or "UnpairedFolders" in text:
        return ["model=cyclegan"]
    if "paired_folder" in text or "PairedFolder" in text:
        return ["model=pix2pix"]
    return []


def resolved(overrides: list[str]) -> dict[str, Any]:
    """The resolved config of `gan-train *overrides` (missing values stay '???'), or the error composing or
    validating it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(version_base="1.3", config_module="gan_cli.conf"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            callbacks = OmegaConf.to_container(cfg.hydra.callbacks, resolve=False)
            del cfg["hydra"]
            cfg.paths.output_dir = "OUTPUT_DIR"
        validate(cfg)
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        config["hydra_callbacks"] = callbacks
        return config
    except Exception as error:  # a composition that fails must fail the same way after the move
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    finally:
        GlobalHydra.instance().clear()


def validate(cfg) -> None:
    """Check every `_target_` against its target's signature, as gan-train does before it builds anything, with a
    stand-in folder where the data option leaves data.root for the user to give. An option that leaves other
    values for the user (metrics=custom's network, text_encoder=sentence_transformer's model) is not checked."""
    from omegaconf import OmegaConf, open_dict

    from gan_cli.config.schemas import validate_targets

    checked = cfg.copy()
    if "root" in checked.data.keys() and OmegaConf.is_missing(checked.data, "root"):
        with open_dict(checked):
            checked.data.root = "/somewhere"
    if not OmegaConf.missing_keys(checked):
        validate_targets(checked)


def compose_all() -> dict[str, dict[str, Any]]:
    from gan_cli.config.schemas import register_schemas

    for variable in ("GAN_CLI_DATA_DIR", "GAN_CLI_LOG_DIR"):
        os.environ.pop(variable, None)
    register_schemas()
    return {name: resolved(overrides) for name, overrides in runs().items()}


def moved(value: Any, table: dict[str, str]) -> Any:
    """`value` with every string that names a moved module (a `_target_`) renamed as `table` says."""
    if isinstance(value, dict):
        return {key: moved(item, table) for key, item in value.items()}
    if isinstance(value, list):
        return [moved(item, table) for item in value]
    if isinstance(value, str) and value.startswith("gan_cli."):
        for old in sorted(table, key=len, reverse=True):
            if value == old or value.startswith(old + "."):
                return table[old] + value[len(old):]
    return value


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                found.append(f"{where}.{key}: only before ({before[key]!r})")
            elif key not in before:
                found.append(f"{where}.{key}: only after ({after[key]!r})")
            else:
                found += differences(before[key], after[key], f"{where}.{key}")
        return found
    if before != after:
        return [f"{where}: before {before!r}, after {after!r}"]
    return []


def check(snapshot: Path, after: dict[str, dict[str, Any]] | None = None) -> int:
    """Compare the snapshot with `after` (by default every config composed now), printing what differs."""
    saved = json.loads(snapshot.read_text())
    before = moved(saved["configs"], saved["moved"])
    after = compose_all() if after is None else after
    problems = differences(before, after)
    for line in problems:
        print(line)
    print(f"{len(after)} resolved configs compared with {snapshot.name}: "
          f"{'equal' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "check"):
        print(__doc__)
        return 2
    path = Path(argv[1])
    if argv[0] == "write":
        path.write_text(json.dumps({"moved": {}, "configs": compose_all()}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
        return 0
    return check(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
