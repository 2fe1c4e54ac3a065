"""One exception type for every mistake a user can fix.

Stages and the CLI catch :class:`GistkvError` and print its message as one line
(no traceback), so every message is a sentence naming the file/field and the fix.
"""


class GistkvError(Exception):
    """A user-facing error: bad input, bad params, a file that does not verify."""
