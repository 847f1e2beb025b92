"""gan-cli's commands in processes of their own, without a fresh interpreter's imports each time.

Starting Python and importing Lightning, torch and torchvision takes 10-15 s of CPU here, far more than the tiny
runs the tests make; the suite starts about 75 commands. Instead, one process per test worker imports gan-cli and
its libraries once (multiprocessing's fork server with those modules preloaded) and forks a child per command.
The child is in the state a fresh interpreter reaches after those imports; it takes the command's arguments,
folder and environment, writes stdout and stderr to files, runs the console script's function and exits with its
status, so exit statuses, signals and output are those of a real process.

What an interpreter reads from its environment only as it starts is applied in the child: PYTHONWARNINGS and
OMP_NUM_THREADS. A command whose own start is under test (an installed console script as a shell starts it; DDP,
whose launcher starts the command again for each rank) runs in a fresh interpreter: `run_cli(..., fresh=True)`.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings
from importlib.metadata import entry_points
from pathlib import Path

#: what the fork server imports before it forks: everything a training run would import first
PRELOAD = ["gan_cli.cli", "gan_cli.commands.train", "pytorch_lightning", "torchvision"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def entry_point(program: str) -> tuple[str, str]:
    """(function as module:name, sys.argv[0]) of `python -m gan_cli` or of an installed console script."""
    if program == "gan_cli":
        return "gan_cli.cli:train_main", str(Path(importlib.util.find_spec("gan_cli").origin).with_name("__main__.py"))
    (script,) = entry_points(group="console_scripts", name=program)
    return script.value, str(Path(sys.executable).with_name(program))


def _run(function: str, argv: list[str], cwd: str, env: dict[str, str], output: str) -> None:
    """In the forked child: become the command and run it."""
    for fd, suffix in ((1, ".out"), (2, ".err")):
        os.dup2(os.open(output + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if env.get("PYTHONWARNINGS"):
        warnings.simplefilter(env["PYTHONWARNINGS"])
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = argv
    module, name = function.split(":")
    try:
        getattr(importlib.import_module(module), name)()
    finally:
        atexit._run_exitfuncs()  # an interpreter runs them as it exits; a multiprocessing child leaves with os._exit


class Command:
    """A command running in a child of the fork server: the parts of subprocess.Popen that the tests use."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], program: str = "gan_cli") -> None:
        function, argv0 = entry_point(program)
        self.args = [argv0, *args]
        self._folder = tempfile.TemporaryDirectory(prefix="command-")
        self._output = os.path.join(self._folder.name, "command")
        self._process = _context.Process(target=_run, args=(function, self.args, str(cwd), env, self._output))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self._process.kill()

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        out, err = (Path(self._output + suffix).read_text(errors="replace") for suffix in (".out", ".err"))
        self._folder.cleanup()
        return out, err
