"""Input: one input of a spec's forward, its shape and the domain its values are drawn from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.errors import SpecError
from harness.spec.deferral import caller_location, defer, deferring

RESERVED_NAMES = frozenset({"grad", "result", "torch"})


def is_real(value: object) -> bool:
    """A real number given as an int or a float (a bool is neither).

    >>> is_real(1), is_real(2.5), is_real(True)
    (True, True, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Input:
    """One input of a spec's forward: its shape and the domain values are drawn from.

    ``shape`` holds sizes (ints) and dim names (strings shared between inputs).
    Generated values stay in ``[low, high]``, keep clear of ``kinks`` (points where
    the function is not differentiable) and are pairwise distinct when ``unique``.

    >>> Input(("n", 3), low=0.1, high=5.0)
    Input(shape=('n', 3), low=0.1, high=5.0, requires_grad=True, kinks=(), unique=False)
    """

    shape: tuple[int | str, ...] = ()
    low: float = field(default=-10.0, kw_only=True)
    high: float = field(default=10.0, kw_only=True)
    requires_grad: bool = field(default=True, kw_only=True)
    kinks: tuple[float, ...] = field(default=(), kw_only=True)
    unique: bool = field(default=False, kw_only=True)
    # Set on an Input built invalid under deferring_errors: what is wrong, and where.
    error: SpecError | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except SpecError as error:
            if not deferring():
                raise
            path, line = caller_location()
            object.__setattr__(self, "error", error.located(path=path, line=line))
            defer(self)

    def _validate(self) -> None:
        object.__setattr__(self, "shape", checked_shape(self.shape))
        object.__setattr__(self, "kinks", checked_kinks(self.kinks))
        for name in ("low", "high"):
            value = getattr(self, name)
            if not is_real(value) or not math.isfinite(value):
                raise SpecError(
                    f"{name}={value!r} is not a finite number — give the bounds of the "
                    f"input's domain as numbers, e.g. low=-1.0, high=1.0"
                )
            object.__setattr__(self, name, float(value))
        if not self.low < self.high:
            raise SpecError(
                f"low={self.low!r} must be below high={self.high!r} — swap them or widen "
                f"the range"
            )
        for name in ("requires_grad", "unique"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name}={getattr(self, name)!r} must be true or false")

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(size for size in self.shape if isinstance(size, str))

    def resolve(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape for the given dim sizes."""
        return tuple(dims[size] if isinstance(size, str) else size for size in self.shape)


def checked_shape(shape: object) -> tuple[int | str, ...]:
    if isinstance(shape, (str, int)) or not isinstance(shape, Sequence):
        raise SpecError(
            f"shape={shape!r} is not a sequence of sizes — write a list such as "
            f"shape=[3] or shape=['n', 2] (shape=[] is a scalar)"
        )
    for size in shape:
        if isinstance(size, str):
            if not size.isidentifier() or size.startswith("_"):
                raise SpecError(
                    f"dim name {size!r} in shape={list(shape)!r} is not a valid name — "
                    f"use letters, digits and underscores, e.g. 'n' or 'batch'"
                )
        elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SpecError(
                f"size {size!r} in shape={list(shape)!r} is not a non-negative integer "
                f"or a dim name — write e.g. 3 or 'n'"
            )
    return tuple(shape)


def checked_kinks(kinks: object) -> tuple[float, ...]:
    if isinstance(kinks, (str, bytes)) or not isinstance(kinks, Sequence):
        raise SpecError(
            f"kinks={kinks!r} is not a list of numbers — write e.g. kinks=[0.0]"
        )
    for kink in kinks:
        if not is_real(kink) or not math.isfinite(kink):
            raise SpecError(
                f"kink {kink!r} in kinks={list(kinks)!r} is not a finite number — "
                f"list the points where the function is not differentiable, e.g. [0.0]"
            )
    return tuple(float(kink) for kink in kinks)
