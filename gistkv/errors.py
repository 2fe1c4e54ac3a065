"""One exception type for every mistake a user can fix.

Stages and the CLI catch :class:`GistkvError` and print its message as one line
(no traceback), so every message is a sentence naming the file/field and the fix.
"""

from __future__ import annotations

from typing import NoReturn


class GistkvError(Exception):
    """A user-facing error: bad input, bad params, a file that does not verify."""


def fail(err: GistkvError) -> NoReturn:
    """End a CLI command on ``err``: ``error: <one line>`` in red on stderr, exit code 1."""
    import typer

    typer.secho(f"error: {err}", fg="red", err=True)
    raise typer.Exit(1)
