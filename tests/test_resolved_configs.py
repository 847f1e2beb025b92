"""What runs changes only on purpose: every resolved config (each model with its default data, each option of
the other groups) equals the snapshot tools/resolved_configs.json, with the `_target_` paths moved since it
was written mapped through its "moved" table. A change meant to change configs rewrites the snapshot
(`python tools/resolved_configs.py write tools/resolved_configs.json`); the renovation of issue 20 was checked
this way against the configs composed before it (commit 57a1de7)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tools" / "resolved_configs.json"


def check(snapshot: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/resolved_configs.py", "check", str(snapshot)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_resolved_config_equals_the_snapshot():
    result = check(SNAPSHOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resolved configs compared" in result.stdout and ": equal" in result.stdout


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
