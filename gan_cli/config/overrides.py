"""Command-line overrides checked before Hydra reads them: a mistyped group or key (`modle=dcgan`) is named with
the closest ones there are (`model=`), where Hydra would suggest appending a new key (`+modle=dcgan`)."""

from __future__ import annotations

import dataclasses
import difflib
from importlib.resources import files

from gan_cli.errors import UserError

#: flags of Hydra's own command line, and their arguments
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}


def config_groups() -> set[str]:
    """The config groups shipped with gan-cli (the folders of gan_cli.conf)."""
    root = files("gan_cli.conf")
    return {entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("_")}


def unknown_override(args: list[str], schema: type) -> UserError | None:
    """The error for the first `name=value` whose name is no config group or top-level key of `schema`."""
    groups, keys = config_groups(), {field.name for field in dataclasses.fields(schema)}
    known = groups | keys | {"hydra"}
    skip_next = False
    for arg in args:
        if skip_next or arg.startswith("-"):
            skip_next = arg in _FLAGS_WITH_VALUE
            continue
        if "=" not in arg or arg.startswith(("+", "~")):
            continue
        name = arg.split("=", 1)[0].split(".", 1)[0].split("/", 1)[0].split("@", 1)[0]
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        rest = arg.split("=", 1)[0][len(name):]
        hint = (f"Did you mean {' or '.join(f'{c}{rest}=' for c in close)}? " if close else "")
        return UserError(
            f"{arg}: there is no config group or key named {name!r}. {hint}The groups are "
            f"{', '.join(sorted(groups))}; the top-level keys {', '.join(sorted(keys - groups))}. "
            "(A new key of your own is added with +NAME=VALUE.)"
        )
    return None
