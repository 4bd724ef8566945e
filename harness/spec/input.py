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


INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
INPUT_DTYPES = (*INTEGER_DTYPES, "bool")


@dataclass(frozen=True)
class Input:
    """One input of a spec's forward: its shape and the domain values are drawn from.

    ``shape`` holds sizes (ints) and dim names (strings shared between inputs).
    Generated values stay in ``[low, high]``, keep clear of ``kinks`` (points where
    the function is not differentiable) and are pairwise distinct when ``unique``.

    ``dtype`` None is the item's dtype (a float or complex one); an integer dtype
    ("int64", ...) draws from ``[low, high)`` (exclusive, like ``torch.randint``),
    where ``low`` (0 unless given) and ``high`` may name a dim (an embedding's index:
    ``high="V"``);
    "bool" draws masks. Such inputs are passed as they are in every item and never
    differentiated. ``count=(min, max)`` makes the input a list of that many
    tensors of the shape (for cat, stack), each differentiated.

    >>> Input(("n", 3), low=0.1, high=5.0)
    Input(shape=('n', 3), low=0.1, high=5.0, requires_grad=True, kinks=(), unique=False, \
dtype=None, count=None)
    >>> Input(("n",), dtype="int64", low=0, high="V").requires_grad
    False
    """

    shape: tuple[int | str, ...] = ()
    # None: [-10, 10] for a float input, [0, 10) for an integer one (an index's low is 0).
    low: float | str | None = field(default=None, kw_only=True)
    high: float | str | None = field(default=None, kw_only=True)
    requires_grad: bool | None = field(default=None, kw_only=True)  # None: unless integral
    kinks: tuple[float, ...] = field(default=(), kw_only=True)
    unique: bool = field(default=False, kw_only=True)
    dtype: str | None = field(default=None, kw_only=True)
    count: tuple[int, int] | None = field(default=None, kw_only=True)
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
        self._validate_dtype()
        defaults = (0, 10) if self.is_integral else (-10.0, 10.0)
        for name, default in zip(("low", "high"), defaults):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, str) and self.is_integral and _is_dim_name(value):
                continue  # a dim's size, checked against the spec's dims
            if not is_real(value) or not math.isfinite(value):
                raise SpecError(
                    f"{name}={value!r} is not a finite number — give the bounds of the "
                    f"input's domain as numbers, e.g. low=-1.0, high=1.0"
                    + (" (only an integer input's bounds may name a dim)"
                       if isinstance(value, str) and _is_dim_name(value) else "")
                )
            object.__setattr__(self, name, int(value) if self.is_integral else float(value))
        if is_real(self.low) and is_real(self.high) and not self.low < self.high:
            raise SpecError(
                f"low={self.low!r} must be below high={self.high!r} — swap them or widen "
                f"the range" + (" (high is exclusive for an integer input)"
                                if self.is_integral else "")
            )
        for name in ("requires_grad", "unique"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name}={getattr(self, name)!r} must be true or false")
        object.__setattr__(self, "count", _checked_count(self.count))

    def _validate_dtype(self) -> None:
        if self.dtype is not None and self.dtype not in INPUT_DTYPES:
            raise SpecError(
                f"dtype={self.dtype!r} is not an input dtype — leave it out for the item's "
                f"dtype, or give one of {', '.join(INPUT_DTYPES)}"
            )
        if self.requires_grad is None:
            object.__setattr__(self, "requires_grad", self.dtype is None)
        elif self.requires_grad and self.dtype is not None:
            raise SpecError(
                f"requires_grad=True on {_article(self.dtype)} {self.dtype} input — an integer "
                "or bool input has no gradient; leave requires_grad out (it is false for these)"
            )
        if self.kinks and self.dtype is not None:
            raise SpecError(f"kinks={list(self.kinks)!r} on {_article(self.dtype)} {self.dtype} "
                            "input — kinks are for float inputs; remove them")

    @property
    def is_integral(self) -> bool:
        """An integer or bool input: drawn as it is, never differentiated."""
        return self.dtype is not None

    @property
    def dim_names(self) -> tuple[str, ...]:
        """The dims the input's shape and its bounds name."""
        shape_dims = tuple(size for size in self.shape if isinstance(size, str))
        bound_dims = tuple(b for b in (self.low, self.high) if isinstance(b, str))
        return tuple(dict.fromkeys((*shape_dims, *bound_dims)))

    def resolve(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape for the given dim sizes."""
        return tuple(dims[size] if isinstance(size, str) else size for size in self.shape)

    def bounds(self, dims: Mapping[str, int]) -> tuple[float, float]:
        """(low, high) with any dim named by a bound resolved to its size."""
        return tuple(dims[b] if isinstance(b, str) else b for b in (self.low, self.high))


def leaf_names(name: str, value: Input, count: int | None) -> tuple[str, ...]:
    """The tensors an input stands for: itself, or ``name[i]`` for each of a list's.

    >>> leaf_names("xs", Input((2,), count=(1, 3)), 2), leaf_names("x", Input(), None)
    (('xs[0]', 'xs[1]'), ('x',))
    """
    if value.count is None:
        return (name,)
    return tuple(f"{name}[{i}]" for i in range(count or 0))


def _is_dim_name(value: str) -> bool:
    return value.isidentifier() and not value.startswith("_")


def _checked_count(count: object) -> tuple[int, int] | None:
    if count is None:
        return None
    if (isinstance(count, (str, bytes)) or not isinstance(count, Sequence) or len(count) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in count)
            or not 0 <= count[0] <= count[1]):
        raise SpecError(
            f"count={count!r} is not a [min, max] range of list lengths, 0 <= min <= max — "
            f"write e.g. count=[1, 4]"
        )
    return tuple(count)


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


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" and not word.startswith("uint") else "a"
