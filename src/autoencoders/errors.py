"""The library's errors, without imports: every module and the command line can share them.

``InputError`` is bad input the user can fix (a file, a setting, a folder); its message says what was wrong and
what to do, and the command line prints it as one line with exit code 2. Anything else that escapes a command
is a bug of the library: exit code 1 and a hint to report it (``--debug`` shows the traceback).
"""

from typing import Any


class InputError(ValueError):
    """Input the user can fix; the message names what was wrong and how to fix it (a ValueError, so
    callers that catch ValueError keep working)."""


def short_repr(value: Any, width: int = 60) -> str:
    """A value's repr cut to ``width`` characters: a message stays one line, whatever a file held."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
