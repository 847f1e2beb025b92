"""What runs changes only on purpose: every resolved config (each model with its default data, each option of
the other groups) equals the snapshot tools/resolved_configs.json, with the `_target_` paths moved since it
was written mapped through its "moved" table, and every `_target_` in them fits its target's signature. A change
meant to change configs rewrites the snapshot (`python tools/resolved_configs.py write tools/resolved_configs.json`);
the renovation of issue 20 was checked this way against the configs composed before it (commit 57a1de7)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tools" / "resolved_configs.json"


@pytest.mark.slow
def test_every_resolved_config_validates_and_equals_the_snapshot(monkeypatch, capsys):
    """`python tools/resolved_configs.py check tools/resolved_configs.json`, in-process."""
    for variable in ("GAN_CLI_DATA_DIR", "GAN_CLI_LOG_DIR"):  # the tool drops them: paths depend on the machine
        monkeypatch.delenv(variable, raising=False)
    status = resolved_configs_tool().check(SNAPSHOT)
    said = capsys.readouterr().out
    assert status == 0, said[-3000:]
    assert "resolved configs compared" in said and ": equal" in said


def test_a_changed_setting_and_a_moved_target_are_told_apart(tmp_path, capsys):
    """The comparison can fail: one changed setting is reported, key and values named, while a target whose
    module moved (the "moved" table) compares equal. Compared with the snapshot's own configs (the test above
    proves them equal to the composed ones), so nothing is composed twice."""
    snapshot = json.loads(SNAPSHOT.read_text())
    composed = json.loads(SNAPSHOT.read_text())["configs"]
    snapshot["configs"]["model=dcgan"]["model"]["lr"] = 1.0
    snapshot["configs"]["model=cyclegan"]["model"]["_target_"] = "gan_cli.old_place.CycleGAN"
    snapshot["moved"] = {"gan_cli.old_place": "gan_cli.models.translation.cyclegan"}
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(snapshot))
    assert resolved_configs_tool().check(changed, after=composed) == 1
    said = capsys.readouterr().out
    assert ".model.lr: before 1.0, after 0.0002" in said and "1 differences" in said


def resolved_configs_tool():
    """tools/resolved_configs.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("resolved_configs", ROOT / "tools" / "resolved_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
