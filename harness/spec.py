"""Input and Spec: the declarative model of a gradient to verify, validated at construction."""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from harness.calls import KeywordCall
from harness.errors import SpecError, at_key, did_you_mean
from harness.spec_options import (
    check_memory,
    checked_benchmark,
    checked_checks,
    checked_dims,
    checked_dtypes,
    checked_tolerances,
)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
RESERVED_NAMES = frozenset({"grad", "result", "torch"})
EXAMPLE_KEYS = frozenset({"expected", "rtol", "atol", "grad"})


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Deferral:
    """The invalid Inputs and Specs built while a spec module is imported, each with the
    line of that module executing when it was built (it may be built in a helper)."""

    def __init__(self, file: str | None):
        self.file = file
        self.invalid: list[tuple[Input | Spec, int | None]] = []


_DEFERRED: ContextVar[_Deferral | None] = ContextVar("harness_deferred", default=None)


@contextmanager
def deferring_errors(
    file: str | os.PathLike | None = None,
) -> Iterator[list[tuple[Input | Spec, int | None]]]:
    """Inside the block an invalid ``Input`` or ``Spec`` does not raise.

    It is built marked invalid instead (its ``error`` holds the located SpecError)
    and listed, with the line of ``file`` (the spec module being imported) that was
    running, so that a module runs on past one bad spec and the loader reports it as
    one failing item beside the good ones. An invalid Input makes the Spec that uses
    it invalid, and leaves the list.

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


def _defer(invalid: Input | Spec) -> bool:
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


def _consume(invalid: Input) -> None:
    """An invalid Input used by a Spec: the Spec is reported, not the Input."""
    deferral = _DEFERRED.get()
    if deferral is not None:
        deferral.invalid[:] = [entry for entry in deferral.invalid if entry[0] is not invalid]


def _same_path(filename: str, file: str) -> bool:
    return filename == file or (
        not filename.startswith("<") and os.path.abspath(filename) == os.path.abspath(file)
    )


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
            if _DEFERRED.get() is None:
                raise
            path, line = _caller_location()
            object.__setattr__(self, "error", error.located(path=path, line=line))
            _defer(self)

    def _validate(self) -> None:
        object.__setattr__(self, "shape", _checked_shape(self.shape))
        object.__setattr__(self, "kinks", _checked_kinks(self.kinks))
        for name in ("low", "high"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
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


def _checked_shape(shape: object) -> tuple[int | str, ...]:
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


def _checked_kinks(kinks: object) -> tuple[float, ...]:
    if isinstance(kinks, (str, bytes)) or not isinstance(kinks, Sequence):
        raise SpecError(
            f"kinks={kinks!r} is not a list of numbers — write e.g. kinks=[0.0]"
        )
    for kink in kinks:
        if not _is_real(kink) or not math.isfinite(kink):
            raise SpecError(
                f"kink {kink!r} in kinks={list(kinks)!r} is not a finite number — "
                f"list the points where the function is not differentiable, e.g. [0.0]"
            )
    return tuple(float(kink) for kink in kinks)


class Spec:
    """A function, its inputs and what is known of its gradient.

    ``forward`` takes the inputs (and any dims it names) by keyword. ``backward``
    maps an input's name to its analytic vector-Jacobian product, a callable
    taking any of ``grad``, ``result``, the inputs and the dims by keyword.

    >>> import torch
    >>> cube = Spec(
    ...     forward=lambda x: x**3,
    ...     inputs={"x": Input(("n",))},
    ...     backward={"x": lambda grad, x: grad * 3 * x**2},
    ...     name="cube",
    ... )
    >>> cube.differentiable
    ('x',)
    """

    def __init__(
        self,
        *,
        forward: Callable[..., Any],
        inputs: Mapping[str, Input],
        backward: Mapping[str, Callable[..., Any]] | None = None,
        jvp: Callable[..., Any] | None = None,
        reference: Callable[..., Any] | None = None,
        dims: Mapping[str, Sequence[int]] | None = None,
        checks: Sequence[str] | None = None,
        dtypes: Sequence[str] | None = None,
        tolerances: Mapping[str, Mapping[str, float]] | None = None,
        twice_differentiable: bool = False,
        examples: Sequence[Mapping[str, Any]] = (),
        name: str | None = None,
        doc: str = "",
        benchmark: Mapping[str, int] | None = None,
        nondet_tol: float = 0.0,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        if path is None:
            path, line = _caller_location()
        self.path, self.line, self.name = path, line, name
        self.error: SpecError | None = None  # set on an invalid spec built by deferring_errors
        try:
            _check_name(name)
            self._build(
                forward, inputs, backward, jvp, reference, dims, checks, dtypes,
                tolerances, twice_differentiable, examples, doc, benchmark, nondet_tol,
            )
        except SpecError as error:
            self.error = error.located(path=path, line=line, spec=name)
            if not _defer(self):
                raise self.error from None

    @classmethod
    def _invalid(cls, error: SpecError, path: str | None, line: int | None,
                 name: str | None) -> Spec:
        """An invalid spec for ``error`` (deferred), or ``error`` raised."""
        located = error.located(path=path, line=line, spec=name)
        spec = cls.__new__(cls)
        spec.path, spec.line, spec.name, spec.error = path, line, name, located
        if not _defer(spec):
            raise located from None
        return spec

    def _build(
        self, forward, inputs, backward, jvp, reference, dims, checks, dtypes,
        tolerances, twice_differentiable, examples, doc, benchmark, nondet_tol,
    ) -> None:
        with at_key("inputs"):
            self.inputs = _checked_inputs(inputs)
        with at_key("dims"):
            self.dims = checked_dims(dims, self.inputs)
        variables = {**{n: "input" for n in self.inputs}, **{d: "dim" for d in self.dims}}
        with at_key("forward"):
            self.forward = KeywordCall(forward, "forward", variables)
        self.backward = _checked_backward(backward, self.inputs, variables)
        tangents = {f"{n}_t": "tangent" for n in self.differentiable}
        with at_key("jvp"):
            self.jvp = _optional_call(jvp, "jvp", {**variables, **tangents, "result": "output"})
        with at_key("reference"):
            self.reference = _optional_call(reference, "reference", variables)
        with at_key("checks"):
            self.checks = checked_checks(checks)
        with at_key("dtypes"):
            self.dtypes = checked_dtypes(dtypes)
        with at_key("tolerances"):
            self.tolerances = checked_tolerances(tolerances)
        if not isinstance(twice_differentiable, bool):
            raise SpecError(f"twice_differentiable={twice_differentiable!r} must be true or "
                            f"false", key="twice_differentiable")
        self.twice_differentiable = twice_differentiable
        if not isinstance(doc, str):
            raise SpecError(f"doc={doc!r} must be a string", key="doc")
        self.doc = doc
        with at_key("benchmark"):
            self.benchmark = checked_benchmark(benchmark, self.dims)
        if not _is_real(nondet_tol) or not 0 <= nondet_tol < math.inf:
            raise SpecError(f"nondet_tol={nondet_tol!r} must be a non-negative number",
                            key="nondet_tol")
        self.nondet_tol = float(nondet_tol)
        with at_key("inputs"):
            check_memory(self.inputs, self.dims)
        from harness.examples import checked_examples

        with at_key("examples"):
            self.examples = checked_examples(examples, self)

    @property
    def differentiable(self) -> tuple[str, ...]:
        """Names of the inputs whose gradient is checked."""
        return tuple(n for n, i in self.inputs.items() if i.requires_grad)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def __repr__(self) -> str:
        return f"<Spec {self.name!r} at {self.location}>"

    @classmethod
    def from_module(
        cls,
        module: Any,
        *,
        inputs: Mapping[str, Input],
        forward: Callable[..., Any] | None = None,
        parameter_low: float = -1.0,
        parameter_high: float = 1.0,
        **spec_options: Any,
    ) -> Spec:
        """A spec whose differentiable inputs are an ``nn.Module``'s parameters.

        ``forward(model, **inputs)`` receives ``model``, a callable that runs the
        module with the generated parameters (through ``torch.func.functional_call``);
        without it the spec's output is ``model(*inputs)``. Parameters keep their
        dotted names ("linear.weight") as input names.

        >>> import torch
        >>> spec = Spec.from_module(
        ...     torch.nn.Linear(2, 1),
        ...     inputs={"x": Input(("n", 2), requires_grad=False)},
        ...     forward=lambda model, x: model(x).square().mean(),
        ...     name="linear_square",
        ... )
        >>> spec.differentiable
        ('weight', 'bias')
        """
        from harness.modules import module_spec_parts

        if "path" not in spec_options:
            spec_options["path"], spec_options["line"] = _caller_location()
        try:
            all_inputs, call = module_spec_parts(
                module, inputs, forward, parameter_low, parameter_high
            )
        except SpecError as error:
            return cls._invalid(error, spec_options["path"], spec_options.get("line"),
                                spec_options.get("name"))
        return cls(forward=call, inputs=all_inputs, **spec_options)


def _check_name(name: object) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError(
            f"name={name!r} cannot be part of a pytest node id — use letters, digits, "
            f"'_', '-' and '.', e.g. 'softmax_rows'",
            key="name",
        )


def _caller_location() -> tuple[str | None, int | None]:
    """The first frame outside the harness package: where the user built the spec."""
    frame = inspect.currentframe().f_back
    harness_dir = __file__.rsplit("/", 1)[0]
    while frame is not None and (
        frame.f_code.co_filename.startswith(harness_dir)
        # Input's __init__, which dataclasses generates with this module's globals
        or frame.f_globals.get("__name__", "").partition(".")[0] == "harness"
    ):
        frame = frame.f_back
    if frame is None:
        return None, None
    return frame.f_code.co_filename, frame.f_lineno


def _checked_inputs(inputs: object) -> dict[str, Input]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise SpecError(
            f"inputs={inputs!r} must be a non-empty mapping of names to Input — "
            f"e.g. inputs={{'x': Input(['n'])}}"
        )
    for name, value in inputs.items():
        if not isinstance(name, str) or not all(
            (part.isidentifier() and not part.startswith("_")) or part.isdigit()
            for part in name.split(".")
        ):
            raise SpecError(
                f"input name {name!r} is not a valid name — use letters, digits and "
                f"underscores (dots separate a module's parameter path)"
            )
        if name in RESERVED_NAMES or name.endswith("_t"):
            raise SpecError(
                f"input name {name!r} is reserved (grad, result, torch and names ending "
                f"in '_t' mean something in formulas) — rename the input"
            )
        if not isinstance(value, Input):
            raise SpecError(
                f"inputs[{name!r}]={value!r} is not an Input — write Input(shape, ...)",
                key=f"inputs.{name}",
            )
        if value.error is not None:  # built invalid under deferring_errors: so is the spec
            _consume(value)
            raise value.error
    if not any(value.requires_grad for value in inputs.values()):
        raise SpecError(
            "no input has requires_grad=true, so there is no gradient to check — "
            "let at least one input require a gradient"
        )
    return dict(inputs)


def _checked_backward(backward, inputs, variables) -> dict[str, KeywordCall]:
    if backward is None:
        return {}
    if not isinstance(backward, Mapping):
        raise SpecError(f"backward={backward!r} must map input names to callables")
    differentiable = [n for n, i in inputs.items() if i.requires_grad]
    checked = {}
    for name, fn in backward.items():
        scope = {**variables, "grad": "cotangent", "result": "output"}
        with at_key(f"backward.{name}"):
            _check_backward_name(name, inputs, differentiable)
            checked[name] = KeywordCall(fn, f"backward.{name}", scope)
    return checked


def _check_backward_name(name, inputs, differentiable) -> None:
    if name not in inputs:
        raise SpecError(
            f"backward names {name!r}, which is not an input"
            f"{did_you_mean(name, inputs)} — the inputs are {', '.join(inputs)}"
        )
    if name not in differentiable:
        raise SpecError(
            f"backward names {name!r}, an input with requires_grad=false — "
            f"remove the formula or let the input require a gradient"
        )


def _optional_call(fn, role: str, variables) -> KeywordCall | None:
    return None if fn is None else KeywordCall(fn, role, variables)
