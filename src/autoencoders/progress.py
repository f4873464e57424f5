"""Progress of the library's long loops, shown by whoever asks for it.

A loop says what it goes through::

    for chunk in track(chunks, len(chunks), "scoring 10000 items"):
        ...

and ``track`` gives the items back unchanged. Nothing is shown unless a reporter is installed for the current
context with ``reporting(reporter)``: the command line installs one that draws a bar on stderr when stderr is
a terminal; a library call from Python, a test or a pipe stays silent. A reporter is a function
``(iterable, total, description) -> iterable`` that yields the same items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

Item = TypeVar("Item")
Reporter = Callable[[Iterable, int, str], Iterable]

_reporter: ContextVar[Reporter | None] = ContextVar("autoencoders_progress", default=None)


def track(items: Iterable[Item], total: int, description: str) -> Iterable[Item]:
    """``items`` (``total`` of them), reported as they are taken when a reporter is installed."""
    reporter = _reporter.get()
    return items if reporter is None else reporter(items, total, description)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Report the progress of every ``track``ed loop run inside the ``with`` block to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
