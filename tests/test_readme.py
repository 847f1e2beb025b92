"""The README's commands work as a newcomer types them: the dry run shows resolved values, and the first gan-eval
example (train the digit classifier, then judge a checkpoint with it) runs offline."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gan_cli.commands.train import train
from tests.conftest import QUICK, SMALL, compose_train, run_cli

ROOT = Path(__file__).resolve().parents[1]


def readme_block(after: str) -> list[list[str]]:
    """The commands of the first ```bash block after the text `after`, continuation lines joined, split as a
    shell would."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(after):], re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line.split("  #")[0]) for line in lines if line.strip()]


@pytest.mark.slow
def test_the_dry_run_the_readme_shows_prints_resolved_values(tmp_path):
    assert "gan-train --cfg job --resolve" in (ROOT / "README.md").read_text()
    result = run_cli(["--cfg", "job", "--resolve"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_epochs: 15" in result.stdout and "${" not in result.stdout


@pytest.mark.slow
def test_the_readme_gan_eval_example_runs_offline(tmp_path, digit_classifier):
    classifier, (gan_eval, *arguments) = readme_block("**gan-eval**")
    assert classifier[:3] == ["gan-train", "model=classifier", "data=mnist_5k"] and gan_eval == "gan-eval"
    run = tmp_path / "dcgan"  # <run>: a tiny DCGAN on 32 px digits; the classifier: conftest's 2-epoch one
    train(compose_train(run, [*QUICK, *SMALL["dcgan"], "logger=none", "data.channels=1"]))
    folder = str(digit_classifier[0])
    arguments = [a.replace("<run>", str(run)).replace("outputs/digit_classifier", folder) for a in arguments]
    result = run_cli([*arguments, "metrics.num_samples=100", f"output={tmp_path / 'record.json'}"], tmp_path,
                     module="gan-eval")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "record.json").is_file() and "fid" in result.stdout.lower()
