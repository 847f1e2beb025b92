"""The suite's commands run in processes forked from one that has imported gan-cli already (tests/prewarmed.py):
such a process answers as a fresh interpreter does. (That it is a process of its own, with its own exit status and
signals, the SIGKILL and signal tests of test_resume.py and test_signals.py show.)"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_a_forked_command_says_and_returns_what_a_fresh_interpreter_does(tmp_path):
    refused = ["data=fake", "data.batch_size=0", f"hydra.run.dir={tmp_path / 'run'}"]
    fresh, forked = run_cli(refused, tmp_path, fresh=True), run_cli(refused, tmp_path)
    assert fresh.returncode == forked.returncode == 1
    assert "data.batch_size=0" in forked.stderr and "Traceback" not in forked.stderr
    assert (forked.stdout, forked.stderr) == (fresh.stdout, fresh.stderr)

