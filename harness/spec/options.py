"""Validation of a spec's options: dims, checks, dtypes, tolerances, benchmark sizes, memory.

Each function returns the option normalised or raises SpecError naming the bad
value, the rule and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from harness.errors import SpecError, did_you_mean, unknown_name
from harness.registry import CHECK_NAMES, DTYPE_NAMES
from harness.spec.input import is_real

if TYPE_CHECKING:
    from harness.spec.input import Input

DEFAULT_DIM_RANGE = (1, 6)
MEMORY_BUDGET = 10**6  # elements per input at the largest declared dims
DEFAULT_DTYPES = ("float64", "float32")


def checked_dims(dims: object, inputs: Mapping[str, Input]) -> dict[str, tuple[int, int]]:
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
        if dim in value.dim_names:
            return i, value.dim_names.index(dim)
    return len(inputs), 0


def check_integer_bounds(inputs: Mapping[str, Input], dims: Mapping[str, tuple[int, int]],
                         declared: Mapping[str, object]):
    """An integer input's bound names a dim some shape uses or ``dims`` declares, and its
    range [low, high) is never empty, whatever sizes its dims take."""
    shaped = {size for value in inputs.values() for size in value.shape if isinstance(size, str)}
    for name, value in inputs.items():
        if not value.is_integral or value.dtype == "bool":
            continue
        for bound in ("low", "high"):
            dim = getattr(value, bound)
            if isinstance(dim, str) and dim not in shaped and dim not in declared:
                raise SpecError(
                    f"inputs.{name}: {bound}={dim!r} names a dim that no input's shape uses "
                    f"and dims does not declare{did_you_mean(dim, shaped)} — declare it, "
                    f"e.g. dims = {{{dim} = [1, 8]}}", key=f"inputs.{name}")
        largest_low = dims[value.low][1] if isinstance(value.low, str) else value.low
        smallest_high = dims[value.high][0] if isinstance(value.high, str) else value.high
        if not largest_low < smallest_high:
            shown = (f"low={value.low!r} (up to {largest_low}), high={value.high!r} (from "
                     f"{smallest_high})")
            raise SpecError(
                f"inputs.{name}: {shown} can leave no integer to draw (high is exclusive) — "
                f"raise the dim's minimum or lower low", key=f"inputs.{name}")


def checked_params(params: object, taken: Sequence[str]) -> dict[str, tuple]:
    """{name: values}: non-tensor arguments drawn from their lists (shrinking to the first).

    ``taken`` are the names already meaning something (inputs, dims, grad, ...).
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise SpecError(f"params={params!r} must map names to lists of values, "
                        f"e.g. params={{'dim': [0, -1]}}")
    checked = {}
    for name, values in params.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise SpecError(f"params name {name!r} is not a valid name — use letters, digits "
                            f"and underscores")
        if name in taken:
            raise SpecError(f"params.{name} has the name of an input, a dim or a formula "
                            f"variable — rename it")
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
            raise SpecError(f"params.{name}={values!r} is not a list of values — write e.g. "
                            f"{name} = [0, -1]")
        if not values:
            raise SpecError(f"params.{name}=[] lists no value to draw — give at least one")
        checked[name] = tuple(values)
    return checked


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


def checked_checks(checks: object) -> tuple[str, ...] | None:
    if checks is None:
        return None
    if isinstance(checks, str) or not isinstance(checks, Sequence):
        raise SpecError(f"checks={checks!r} must be a list of check names, e.g. ['analytic']")
    for name in checks:
        if name not in CHECK_NAMES:
            raise SpecError(unknown_name("check", name, CHECK_NAMES))
    return tuple(checks)


def checked_dtypes(dtypes: object) -> tuple[str, ...]:
    if dtypes is None:
        return DEFAULT_DTYPES
    if isinstance(dtypes, str) or not isinstance(dtypes, Sequence) or not dtypes:
        raise SpecError(f"dtypes={dtypes!r} must be a non-empty list, e.g. ['float64']")
    for name in dtypes:
        if name not in DTYPE_NAMES:
            raise SpecError(unknown_name("dtype", name, DTYPE_NAMES))
    return tuple(dtypes)


def checked_tolerances(tolerances: object) -> dict[str, dict[str, float]]:
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
            if not is_real(value) or not 0 <= value < math.inf:
                raise SpecError(f"tolerances.{dtype}.{key}={value!r} must be a number >= 0")
        checked[dtype] = {key: float(value) for key, value in pair.items()}
    return checked


def checked_benchmark(benchmark: object, dims) -> dict[str, int]:
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


def check_memory(inputs: Mapping[str, Input], dims) -> None:
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
