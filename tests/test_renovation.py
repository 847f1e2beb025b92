"""The renovation of issue 20 moved code, not behaviour: every resolved config, with the moved `_target_` paths
mapped, equals the one composed before it (tools/resolved_configs.py against its snapshot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_resolved_config_equals_the_one_before_the_renovation():
    result = subprocess.run([sys.executable, "tools/resolved_configs.py", "check", "tools/resolved_configs_before.json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resolved configs compared" in result.stdout and ": equal" in result.stdout


def test_the_check_fails_on_a_changed_setting(tmp_path):
    """The comparison can fail: a snapshot with one setting changed is reported, key and values named."""
    import json

    snapshot = json.loads((ROOT / "tools/resolved_configs_before.json").read_text())
    snapshot["model=dcgan"]["model"]["lr"] = 1.0
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(snapshot))
    result = subprocess.run([sys.executable, "tools/resolved_configs.py", "check", str(changed)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert ".model.lr: before 1.0, after 0.0002" in result.stdout and "1 differences" in result.stdout
