"""Deferred spec errors, and where a spec was built: what lets one bad spec in a module
cost only its own item.

While the loader imports a spec module (inside ``deferring_errors``), an invalid
``Input`` or ``Spec`` does not raise: it is built marked invalid and listed, with
the line of the module that was running, and the module runs on past it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

HARNESS_DIR = str(Path(__file__).resolve().parents[1])  # the harness package itself


class _Deferral:
    """The invalid Inputs and Specs built while a spec module is imported, each with the
    line of that module executing when it was built (it may be built in a helper)."""

    def __init__(self, file: str | None):
        self.file = file
        self.invalid: list[tuple[object, int | None]] = []


_DEFERRED: ContextVar[_Deferral | None] = ContextVar("harness_deferred", default=None)


@contextmanager
def deferring_errors(
    file: str | os.PathLike | None = None,
) -> Iterator[list[tuple[object, int | None]]]:
    """Inside the block an invalid ``Input`` or ``Spec`` does not raise.

    It is built marked invalid instead (its ``error`` holds the located SpecError)
    and listed, with the line of ``file`` (the spec module being imported) that was
    running, so that a module runs on past one bad spec and the loader reports it as
    one failing item beside the good ones. An invalid Input makes the Spec that uses
    it invalid, and leaves the list.

    >>> from harness.spec import Input
    >>> with deferring_errors() as invalid:
    ...     bad = Input(low=1.0, high=0.0)
    >>> [entry for entry, line in invalid] == [bad]
    True
    >>> bad.error.message
    'low=1.0 must be below high=0.0 — swap them or widen the range'
    """
    token = _DEFERRED.set(_Deferral(None if file is None else os.fspath(file)))
    try:
        yield _DEFERRED.get().invalid
    finally:
        _DEFERRED.reset(token)


def defer(invalid) -> bool:
    """List ``invalid`` when errors are deferred; False when they must be raised."""
    deferral = _DEFERRED.get()
    if deferral is None:
        return False
    line = None
    if deferral.file is not None:
        frame = inspect.currentframe().f_back
        while frame is not None and not _same_path(frame.f_code.co_filename, deferral.file):
            frame = frame.f_back
        line = None if frame is None else frame.f_lineno
    deferral.invalid.append((invalid, line))
    return True


def consume(invalid) -> None:
    """An invalid Input used by a Spec: the Spec is reported, not the Input."""
    deferral = _DEFERRED.get()
    if deferral is not None:
        deferral.invalid[:] = [entry for entry in deferral.invalid if entry[0] is not invalid]


def _same_path(filename: str, file: str) -> bool:
    return filename == file or (
        not filename.startswith("<") and os.path.abspath(filename) == os.path.abspath(file)
    )


def caller_location() -> tuple[str | None, int | None]:
    """The first frame outside the harness package: where the user built the spec."""
    frame = inspect.currentframe().f_back
    while frame is not None and (
        frame.f_code.co_filename.startswith(HARNESS_DIR)
        # Input's __init__, which dataclasses generates with this module's globals
        or frame.f_globals.get("__name__", "").partition(".")[0] == "harness"
    ):
        frame = frame.f_back
    if frame is None:
        return None, None
    return frame.f_code.co_filename, frame.f_lineno


def deferring() -> bool:
    """Whether errors are being deferred (a spec module is being imported)."""
    return _DEFERRED.get() is not None
