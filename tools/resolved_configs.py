"""The resolved config of every model with its default data, and of every option of the other config groups,
written to a JSON file or checked against one: a renovation that moves code must leave what runs unchanged.

    python tools/resolved_configs.py write FILE    compose them all now and write FILE
    python tools/resolved_configs.py check FILE    compose them all now and compare with FILE, where every
                                                   `_target_` of FILE is first mapped through MOVED (the
                                                   modules the renovation of issue 20 moved); exit 1 on a
                                                   difference, naming each one

Each entry is `gan-train <overrides>` composed as the command line would (no objects are built), resolved,
with the run's output folder fixed and without the `hydra` node (its callbacks are kept: they name code).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

#: module paths before the renovation -> after (longest prefix wins)
MOVED: dict[str, str] = {
    "gan_cli.runner": "gan_cli.commands.train",
    "gan_cli.sampling": "gan_cli.commands.sample",
    "gan_cli.translating": "gan_cli.commands.translate",
    "gan_cli.evaluating": "gan_cli.commands.evaluate",
    "gan_cli.blending_cli": "gan_cli.commands.blend",
    "gan_cli.schemas": "gan_cli.config.schemas",
    "gan_cli.resolvers": "gan_cli.config.resolvers",
    "gan_cli.sweeps": "gan_cli.sweeps.summary",
    "gan_cli.launchers": "gan_cli.sweeps.launchers",
    "gan_cli.hparams_view": "gan_cli.loggers.hparams_view",
    "gan_cli.metrics.evaluator": "gan_cli.evaluation.evaluator",
    "gan_cli.metrics.callback": "gan_cli.evaluation.callback",
    "gan_cli.metrics.config": "gan_cli.evaluation.config",
    "gan_cli.models.gan": "gan_cli.models.gans.gan",
    "gan_cli.models.infogan": "gan_cli.models.gans.infogan",
    "gan_cli.nets.infogan": "gan_cli.models.gans.infogan_nets",
    "gan_cli.models.ssgan": "gan_cli.models.gans.ssgan",
    "gan_cli.nets.ssgan": "gan_cli.models.gans.ssgan_nets",
    "gan_cli.models.lapgan": "gan_cli.models.gans.lapgan",
    "gan_cli.nets.lapgan": "gan_cli.models.gans.lapgan_nets",
    "gan_cli.models.translation": "gan_cli.models.translation.base",
    "gan_cli.models.pix2pix": "gan_cli.models.translation.pix2pix",
    "gan_cli.models.cyclegan": "gan_cli.models.translation.cyclegan",
    "gan_cli.models.unit": "gan_cli.models.translation.unit",
    "gan_cli.nets.unit": "gan_cli.models.translation.unit_nets",
    "gan_cli.models.direct_translation": "gan_cli.models.translation.direct_translation",
    "gan_cli.models.gpgan": "gan_cli.models.translation.gpgan",
    "gan_cli.nets.gpgan": "gan_cli.models.translation.gpgan_nets",
    "gan_cli.models.text_conditioned": "gan_cli.models.text_to_image.base",
    "gan_cli.losses.matching": "gan_cli.models.text_to_image.matching",
    "gan_cli.models.text_cgan": "gan_cli.models.text_to_image.text_cgan",
    "gan_cli.nets.text_gan": "gan_cli.models.text_to_image.text_cgan_nets",
    "gan_cli.models.stackgan": "gan_cli.models.text_to_image.stackgan",
    "gan_cli.nets.stackgan": "gan_cli.models.text_to_image.stackgan_nets",
    "gan_cli.nets.conditioning": "gan_cli.models.text_to_image.conditioning",
    "gan_cli.models.autoencoder": "gan_cli.models.classic.autoencoder",
    "gan_cli.models.vae": "gan_cli.models.classic.vae",
    "gan_cli.nets.autoencoder": "gan_cli.models.classic.coders",
    "gan_cli.models.rbm": "gan_cli.models.classic.rbm",
    "gan_cli.nets.rbm": "gan_cli.models.classic.rbm_nets",
    "gan_cli.models.dbn": "gan_cli.models.classic.dbn",
    "gan_cli.models.capsnet": "gan_cli.models.classic.capsnet",
    "gan_cli.nets.capsnet": "gan_cli.models.classic.capsnet_nets",
    "gan_cli.models.classifier": "gan_cli.models.classic.classifier",
    "gan_cli.nets.classifier": "gan_cli.models.classic.classifier_nets",
    "gan_cli.nets.ConvClassifier": "gan_cli.models.classic.classifier_nets.ConvClassifier",
    "gan_cli.nets.InfoGANDiscriminator": "gan_cli.models.gans.infogan_nets.InfoGANDiscriminator",
    "gan_cli.nets.InfoGANGenerator": "gan_cli.models.gans.infogan_nets.InfoGANGenerator",
}

ROOT = Path(__file__).resolve().parent.parent
#: groups whose every option is composed on top of the default job (model=dcgan data=mnist_5k)
GROUPS = ("loss", "data", "tricks", "metrics", "text_encoder", "callbacks", "logger", "trainer", "strategy",
          "experiment", "debug", "launcher", "hparams_search")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def runs() -> dict[str, list[str]]:
    """name -> gan-train overrides (translation data with the model of its layout, the rest with the default's)."""
    chosen = {f"model={m}": [f"model={m}"] for m in options("model")}
    for group in GROUPS:
        for option in options(group):
            value = f"[{option}]" if group == "tricks" else option
            chosen[f"{group}={option}"] = [*translation_model(group, option), f"{group}={value}"]
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
    """The resolved config of `gan-train *overrides` (missing values stay '???'), or the error composing it."""
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
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        config["hydra_callbacks"] = callbacks
        return config
    except Exception as error:  # a composition that fails must fail the same way after the move
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    finally:
        GlobalHydra.instance().clear()


def compose_all() -> dict[str, dict[str, Any]]:
    from gan_cli.config.schemas import register_schemas

    for variable in ("GAN_CLI_DATA_DIR", "GAN_CLI_LOG_DIR"):
        os.environ.pop(variable, None)
    register_schemas()
    return {name: resolved(overrides) for name, overrides in runs().items()}


def moved(value: Any) -> Any:
    """`value` with every string that names a moved module (a `_target_`) renamed as MOVED says."""
    if isinstance(value, dict):
        return {key: moved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [moved(item) for item in value]
    if isinstance(value, str) and value.startswith("gan_cli."):
        for old in sorted(MOVED, key=len, reverse=True):
            if value == old or value.startswith(old + "."):
                return MOVED[old] + value[len(old):]
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


def check(snapshot: Path) -> int:
    before = moved(json.loads(snapshot.read_text()))
    after = compose_all()
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
        path.write_text(json.dumps(compose_all(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
        return 0
    return check(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
