"""Every exception of the harness, and the closest-match suggestion its messages use.

Public (users see and catch them): ``HarnessError``, its ``SpecError`` (an invalid
spec) and ``GradientMismatch`` (what the pytest items raise), and
``AllowanceError`` (a harness bug, reported as one). Internal signals, raised and
caught inside the harness and never seen by a user, are marked as such below.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class SpecError(HarnessError, ValueError):
    """A spec (or a spec file) is invalid.

    ``str(error)`` reads ``path:line: spec 'name': what is wrong — how to fix it``;
    the location parts are left out while unknown. The loader fills them in with
    :meth:`located` as the error travels outwards.

    >>> str(SpecError("unknown key 'fowrard' — did you mean 'forward'?",
    ...               path="specs/a.toml", line=3, spec="square"))
    "specs/a.toml:3: spec 'square': unknown key 'fowrard' — did you mean 'forward'?"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        spec: str | None = None,
        key: str = "",
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.spec = spec
        self.key = key  # the spec-file key it concerns ("backward.W"), to find its line
        super().__init__(self.__str__())

    def located(
        self, *, path: str | None = None, line: int | None = None, spec: str | None = None
    ) -> SpecError:
        """A copy with the location parts that this error does not know yet filled in."""
        return SpecError(
            self.message,
            path=self.path or path,
            line=self.line or line,
            spec=self.spec or spec,
            key=self.key,
        )

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        who = f"spec {self.spec!r}: " if self.spec else ""
        return f"{where}{who}{self.message}"

    def __reduce__(self):  # keeps the keywords through pickling (pytest-xdist)
        return (_rebuild_spec_error, (self.message, self.path, self.line, self.spec, self.key))


def _rebuild_spec_error(message, path, line, spec, key) -> SpecError:
    return SpecError(message, path=path, line=line, spec=spec, key=key)


@contextmanager
def at_key(key: str) -> Iterator[None]:
    """Tag the SpecErrors raised inside with the spec-file key they concern."""
    try:
        yield
    except SpecError as error:
        if not error.key:
            error.key = key
        raise


class GradientMismatch(HarnessError, AssertionError):
    """A gradient disagrees with its oracle; what the pytest items raise.

    The message is the report's text: its first line stands alone.
    """


class AllowanceError(HarnessError, RuntimeError):
    """An allowance term came out non-finite or negative: a harness bug, reported as such."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""`` when none is close.

    >>> did_you_mean("fowrard", ["forward", "backward"])
    " (did you mean 'forward'?)"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(what: str, name: str, choices: Sequence[str]) -> str:
    """The message for a name that is not one of ``choices``: the name, the closest, the list.

    >>> unknown_name("check", "analytc", ["analytic", "taylor"])
    "unknown check 'analytc' (did you mean 'analytic'?) — the checks are analytic, taylor"
    """
    return (f"unknown {what} {name!r}{did_you_mean(name, choices)} — the {what}s are "
            f"{', '.join(choices)}")


# --- internal signals: raised and caught inside the harness, never seen by a user -----------


class Discarded(Exception):
    """Internal: the example is not a point where the gradient can be judged (a kink,
    overflow, a step out of the domain); it is counted, never failed."""


class Skipped(Exception):
    """Internal: the check cannot run for this spec here (no forward AD, no CUDA)."""


class Fault(Exception):
    """Internal: a spec's callable misbehaved at an example; the message says how and
    what to do. The checks turn it into a failure that carries the example."""


class FailureFound(Exception):
    """Internal: carries a failing example's failures (``harness.report.Failure``s, each
    with a ``headline``) out through Hypothesis, which shrinks it."""

    def __init__(self, failures: list):
        super().__init__(failures[0].headline)
        self.failures = failures


class BenchmarkSkipped(Exception):
    """Internal: a benchmark that cannot run here (no such device, out of memory);
    ``reason`` says why, and the item is skipped with it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
