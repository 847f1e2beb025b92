"""Errors caused by a user's input: shown as one paragraph, without a Python traceback."""

from __future__ import annotations

import textwrap


class UserError(Exception):
    """Something the user can fix: the message says what is wrong and what to type instead."""


class NonFiniteLossError(UserError):
    """A loss, a weight, a buffer or an optimizer state became NaN or infinite; training stops before a bad
    checkpoint is written."""


class RunInterrupted(UserError):
    """A signal (SIGTERM, SIGUSR1, Ctrl-C) stopped a run after a resumable checkpoint was written; the process
    ends with `exit_code` (128 + the signal's number)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def user_message(error: BaseException) -> str:
    """The paragraph to show for `error`.

    A UserError raised while Hydra instantiates an object comes back as the cause of Hydra's own error, and one
    raised inside a DataLoader worker re-wrapped with the worker's traceback in its text; only the original
    message is kept. Lines are wrapped at 100 characters, but for lines indented
    by two spaces (a command to paste), which are kept whole.
    """
    cause = error
    while cause is not None and not isinstance(cause, UserError):
        cause = cause.__cause__
    error = cause or error
    text = str(error)
    marker = f"{type(error).__name__}: "
    if "Original Traceback" in text and marker in text:
        text = text.rsplit(marker, 1)[1]
    return "\n".join(line if line.startswith("  ") else
                     textwrap.fill(line, width=100, break_long_words=False, break_on_hyphens=False)
                     for line in text.strip().split("\n"))
