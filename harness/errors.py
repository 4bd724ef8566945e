"""The exceptions the harness raises: one base class, one for specs, one for gradients."""

from __future__ import annotations

from collections.abc import Iterator
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


# --- internal signals: raised and caught inside the harness, never seen by a user -----------


class Discarded(Exception):
    """Internal: the example is not a point where the gradient can be judged (a kink,
    overflow, a step out of the domain); it is counted, never failed."""


class Skipped(Exception):
    """Internal: the check cannot run for this spec here (no forward AD, no CUDA)."""
