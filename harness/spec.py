"""Input and Spec: the declarative model of a gradient to verify, validated at construction."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.calls import KeywordCall
from harness.errors import SpecError, at_key
from harness.names import DTYPE_NAMES
from harness.suggest import did_you_mean

DEFAULT_DIM_RANGE = (1, 6)
MEMORY_BUDGET = 10**6  # elements per input at the largest declared dims
DEFAULT_DTYPES = ("float64", "float32")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
RESERVED_NAMES = frozenset({"grad", "result", "torch"})
EXAMPLE_KEYS = frozenset({"expected", "rtol", "atol", "grad"})


def _is_real(value: object) -> bool:
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

    def __post_init__(self) -> None:
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
        try:
            _check_name(name)
            self._build(
                forward, inputs, backward, jvp, reference, dims, checks, dtypes,
                tolerances, twice_differentiable, examples, doc, benchmark, nondet_tol,
            )
        except SpecError as error:
            raise error.located(path=path, line=line, spec=name) from None

    def _build(
        self, forward, inputs, backward, jvp, reference, dims, checks, dtypes,
        tolerances, twice_differentiable, examples, doc, benchmark, nondet_tol,
    ) -> None:
        with at_key("inputs"):
            self.inputs = _checked_inputs(inputs)
        with at_key("dims"):
            self.dims = _checked_dims(dims, self.inputs)
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
            self.checks = _checked_checks(checks)
        with at_key("dtypes"):
            self.dtypes = _checked_dtypes(dtypes)
        with at_key("tolerances"):
            self.tolerances = _checked_tolerances(tolerances)
        if not isinstance(twice_differentiable, bool):
            raise SpecError(f"twice_differentiable={twice_differentiable!r} must be true or "
                            f"false", key="twice_differentiable")
        self.twice_differentiable = twice_differentiable
        if not isinstance(doc, str):
            raise SpecError(f"doc={doc!r} must be a string", key="doc")
        self.doc = doc
        with at_key("benchmark"):
            self.benchmark = _checked_benchmark(benchmark, self.dims)
        if not _is_real(nondet_tol) or not 0 <= nondet_tol < math.inf:
            raise SpecError(f"nondet_tol={nondet_tol!r} must be a non-negative number",
                            key="nondet_tol")
        self.nondet_tol = float(nondet_tol)
        with at_key("inputs"):
            _check_memory(self.inputs, self.dims)
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
            raise error.located(path=spec_options["path"], line=spec_options.get("line"),
                                spec=spec_options.get("name")) from None
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
    frame = sys._getframe(1)
    harness_dir = __file__.rsplit("/", 1)[0]
    while frame is not None and frame.f_code.co_filename.startswith(harness_dir):
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
            part.isidentifier() and not part.startswith("_") for part in name.split(".")
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
    if not any(value.requires_grad for value in inputs.values()):
        raise SpecError(
            "no input has requires_grad=true, so there is no gradient to check — "
            "let at least one input require a gradient"
        )
    return dict(inputs)


def _checked_dims(dims: object, inputs: Mapping[str, Input]) -> dict[str, tuple[int, int]]:
    dims = {} if dims is None else dims
    if not isinstance(dims, Mapping):
        raise SpecError(f"dims={dims!r} must map dim names to [min, max] size ranges")
    used = {d for value in inputs.values() for d in value.dim_names}
    for name in dims:
        if name not in used:
            raise SpecError(
                f"dim {name!r} is declared in dims but no input's shape uses it"
                f"{did_you_mean(name, used)} — use it in a shape or remove it"
            )
        if name in inputs:
            raise SpecError(f"dim {name!r} has the name of an input — rename one of them")
    for name in used & set(inputs):
        raise SpecError(f"dim {name!r} has the name of an input — rename one of them")
    checked = {}
    for name in sorted(used, key=lambda d: _first_use(d, inputs)):
        low, high = _checked_range(name, dims.get(name, DEFAULT_DIM_RANGE))
        checked[name] = (low, high)
    return checked


def _first_use(dim: str, inputs: Mapping[str, Input]) -> tuple[int, int]:
    for i, value in enumerate(inputs.values()):
        if dim in value.shape:
            return i, value.shape.index(dim)
    return len(inputs), 0


def _checked_range(name: str, bounds: object) -> tuple[int, int]:
    if (
        isinstance(bounds, (str, bytes))
        or not isinstance(bounds, Sequence)
        or len(bounds) != 2
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
    ):
        raise SpecError(
            f"dims.{name}={bounds!r} is not a [min, max] pair of integers — "
            f"write e.g. {name} = [1, 8]"
        )
    low, high = bounds
    if low < 0 or low > high:
        raise SpecError(
            f"dims.{name}={list(bounds)!r} is not a range 0 <= min <= max — "
            f"write e.g. {name} = [{max(0, min(low, high))}, {max(low, high, 1)}]"
        )
    return low, high


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


def _checked_checks(checks: object) -> tuple[str, ...] | None:
    if checks is None:
        return None
    from harness.checks import CHECKS

    if isinstance(checks, str) or not isinstance(checks, Sequence):
        raise SpecError(f"checks={checks!r} must be a list of check names, e.g. ['analytic']")
    for name in checks:
        if name not in CHECKS:
            raise SpecError(
                f"unknown check {name!r}{did_you_mean(name, CHECKS)} — "
                f"the checks are {', '.join(CHECKS)}"
            )
    return tuple(checks)


def _checked_dtypes(dtypes: object) -> tuple[str, ...]:
    if dtypes is None:
        return DEFAULT_DTYPES
    if isinstance(dtypes, str) or not isinstance(dtypes, Sequence) or not dtypes:
        raise SpecError(f"dtypes={dtypes!r} must be a non-empty list, e.g. ['float64']")
    for name in dtypes:
        if name not in DTYPE_NAMES:
            raise SpecError(
                f"unknown dtype {name!r}{did_you_mean(name, DTYPE_NAMES)} — "
                f"the dtypes are {', '.join(DTYPE_NAMES)}"
            )
    return tuple(dtypes)


def _checked_tolerances(tolerances: object) -> dict[str, dict[str, float]]:
    if tolerances is None:
        return {}
    if not isinstance(tolerances, Mapping):
        raise SpecError(
            f"tolerances={tolerances!r} must map dtype names to {{rtol, atol}}, "
            f"e.g. {{float32 = {{rtol = 1e-4, atol = 1e-5}}}}"
        )
    checked = {}
    for dtype, pair in tolerances.items():
        if dtype not in DTYPE_NAMES:
            raise SpecError(
                f"tolerances names dtype {dtype!r}{did_you_mean(dtype, DTYPE_NAMES)} — "
                f"the dtypes are {', '.join(DTYPE_NAMES)}"
            )
        if not isinstance(pair, Mapping) or not set(pair) <= {"rtol", "atol"}:
            raise SpecError(
                f"tolerances.{dtype}={pair!r} must hold only rtol and atol, "
                f"e.g. {{rtol = 1e-4, atol = 1e-5}}"
            )
        for key, value in pair.items():
            if not _is_real(value) or not 0 <= value < math.inf:
                raise SpecError(f"tolerances.{dtype}.{key}={value!r} must be a number >= 0")
        checked[dtype] = {key: float(value) for key, value in pair.items()}
    return checked


def _checked_benchmark(benchmark: object, dims) -> dict[str, int]:
    if benchmark is None:
        return {}
    if not isinstance(benchmark, Mapping):
        raise SpecError(f"benchmark={benchmark!r} must map dim names to sizes, e.g. {{n = 4096}}")
    for name, size in benchmark.items():
        if name not in dims:
            raise SpecError(
                f"benchmark names dim {name!r}, which no input uses"
                f"{did_you_mean(name, dims)} — the dims are {', '.join(dims) or 'none'}"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SpecError(f"benchmark.{name}={size!r} must be a positive integer")
    return dict(benchmark)


def _check_memory(inputs: Mapping[str, Input], dims) -> None:
    largest = {name: high for name, (_, high) in dims.items()}
    for name, value in inputs.items():
        elements = math.prod(value.resolve(largest))
        if elements > MEMORY_BUDGET:
            sizes = ", ".join(f"{d}={largest[d]}" for d in value.dim_names)
            where = f"at the largest dims ({sizes})" if sizes else f"(shape {list(value.shape)})"
            fix = "lower the dims' maxima" if sizes else "use a smaller shape"
            raise SpecError(
                f"input {name!r} can reach {elements:,} elements {where}, over the "
                f"budget of {MEMORY_BUDGET:,} per input — {fix}"
            )
