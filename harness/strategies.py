"""Hypothesis strategies: dims, input values inside their domains, cotangent seeds.

Small inputs are drawn element by element through ``hypothesis.extra.numpy`` so
that they shrink to readable counterexamples. Large ones would be filled with a
repeated value (or overrun Hypothesis' buffer), so past ``ELEMENTWISE_LIMIT``
elements Hypothesis draws a seed and the values are generated from it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.spec import Input, Spec
from harness.spec.examples import Example, uniform
from harness.spec.input import leaf_names

ELEMENTWISE_LIMIT = 64
KINK_CLEARANCE = 1e-2  # of the domain's width: finite-difference steps stay this far off
UNIQUE_GRID = 1000  # unique values are drawn from this many evenly spaced points
TINY_FRACTION = 1e-12  # of the domain's largest magnitude: smaller values become 0
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
_FLOAT_WIDTH = {torch.float64: 64, torch.float32: 32, torch.float16: 16}
_REAL_PARTS = {torch.complex128: torch.float64, torch.complex64: torch.float32}


def examples(spec: Spec, dtype: torch.dtype = torch.float64) -> st.SearchStrategy[Example]:
    """Examples for ``spec``: dims first, then every input, then the cotangent seed.

    >>> from harness.spec import Input, Spec
    >>> spec = Spec(forward=lambda x: x.sin(), inputs={"x": Input(["n"], low=0.0, high=1.0)},
    ...             name="sine")
    >>> example = examples(spec).example()
    >>> bool(((example.values["x"] >= 0) & (example.values["x"] <= 1)).all())
    True
    """

    return _drawn_example(spec, dtype)


@st.composite
def _drawn_example(draw: st.DrawFn, spec: Spec, dtype: torch.dtype) -> Example:
    """At module level: Hypothesis reads a composite's source once, as it is defined (a few
    ms each time), not once per spec."""
    dims = {name: draw(st.integers(low, high)) for name, (low, high) in spec.dims.items()}
    counts = {name: draw(st.integers(*spec_input.count))
              for name, spec_input in spec.inputs.items() if spec_input.count is not None}
    params = {name: draw(st.sampled_from(choices)) for name, choices in spec.params.items()}
    values = {}
    for name, spec_input in spec.inputs.items():
        shape = spec_input.resolve(dims)
        for leaf in leaf_names(name, spec_input, counts.get(name)):
            values[leaf] = draw(input_values(spec_input, shape, dtype, dims))
    return Example(dims, values, cotangent_seed=draw(SEEDS), params=params, counts=counts)


def input_values(
    spec_input: Input, shape: tuple[int, ...], dtype: torch.dtype = torch.float64,
    dims: Mapping[str, int] | None = None,
) -> st.SearchStrategy[torch.Tensor]:
    """Float64 tensors of ``shape`` inside the input's domain, representable in ``dtype``;
    an integer or bool input's in its own dtype (``dims`` size the bounds that name one)."""
    bounds = tuple(sorted((dims or {}).items())) if spec_input.is_integral else ()
    return _values(spec_input, tuple(shape), dtype, bounds)


@functools.lru_cache(maxsize=4096)
def _values(spec_input: Input, shape: tuple[int, ...], dtype: torch.dtype,
            dims: tuple[tuple[str, int], ...]) -> st.SearchStrategy[torch.Tensor]:
    """Built once for each input, shape and dtype: a strategy built anew for every example
    has Hypothesis work out its properties anew, as much as drawing the example costs."""
    if spec_input.is_integral:
        return _integral_values(spec_input, shape, dict(dims))
    if dtype.is_complex:  # the real and the imaginary part, each inside [low, high]
        part = _REAL_PARTS[dtype]
        return st.tuples(input_values(spec_input, shape, part),
                         input_values(spec_input, shape, part)).map(
            lambda parts: torch.complex(*parts))
    if math.prod(shape) > ELEMENTWISE_LIMIT:
        return SEEDS.map(lambda seed: generated_values(spec_input, shape, dtype, seed))
    if spec_input.unique:
        arrays = hnp.arrays(np.float64, shape, elements=_unique_elements(spec_input),
                            unique=True)
    else:
        arrays = _placed_arrays(spec_input, shape, dtype)
    return arrays.map(lambda array: _rounded(torch.from_numpy(array.copy()), dtype))


def _placed_arrays(spec_input: Input, shape: tuple[int, ...],
                   dtype: torch.dtype) -> st.SearchStrategy[np.ndarray]:
    """Arrays of floats drawn element by element (no fill value: every element its own
    draw), flushed and moved off the kinks as whole arrays: the same function of each
    element's draw as a map and a filter per element, at a third of the cost (Hypothesis
    pays for every strategy an element passes through; a seed's draws are not the same
    as theirs, as its generation tells strategies apart by their shape). An array that an
    element's move leaves near another kink is drawn again whole."""
    width = _FLOAT_WIDTH.get(dtype, 64)
    floats = st.floats(*_representable_bounds(spec_input.low, spec_input.high, width),
                       allow_nan=False, allow_infinity=False, allow_subnormal=False,
                       width=width)
    arrays = hnp.arrays(np.float64, shape, elements=floats, fill=st.nothing())
    arrays = arrays.map(lambda array: _flushed(array, spec_input))
    if not spec_input.kinks:
        return arrays
    margin = KINK_CLEARANCE * (spec_input.high - spec_input.low)
    return arrays.map(lambda array: _away_from_kinks(array, spec_input, margin)).filter(
        lambda array: _clear(array, spec_input, margin))


def _integral_values(
    spec_input: Input, shape: tuple[int, ...], dims: Mapping[str, int]
) -> st.SearchStrategy[torch.Tensor]:
    """Integers in [low, high) or bools, element by element (they shrink towards low and
    False), from a seed past ELEMENTWISE_LIMIT elements."""
    dtype = getattr(torch, spec_input.dtype)
    if math.prod(shape) > ELEMENTWISE_LIMIT:
        return SEEDS.map(lambda seed: generated_values(spec_input, shape, dtype, seed, dims))
    if spec_input.dtype == "bool":
        elements = st.booleans()
        kind = np.bool_
    else:
        low, high = spec_input.bounds(dims)
        elements, kind = st.integers(int(low), int(high) - 1), np.int64
    arrays = hnp.arrays(kind, shape, elements=elements, unique=spec_input.unique)
    return arrays.map(lambda array: torch.from_numpy(array.copy()).to(dtype))


def generated_values(
    spec_input: Input, shape: tuple[int, ...], dtype: torch.dtype, seed: int,
    dims: Mapping[str, int] | None = None,
) -> torch.Tensor:
    """Values generated from ``seed``: uniform in the domain, off the kinks, spread if unique
    (integers uniform in [low, high), bools fair coins)."""
    generator = torch.Generator().manual_seed(seed)
    if spec_input.is_integral:
        return _generated_integers(spec_input, shape, generator, dims or {})
    if dtype.is_complex:
        part = _REAL_PARTS[dtype]
        return torch.complex(generated_values(spec_input, shape, part, seed),
                             generated_values(spec_input, shape, part, seed + 1))
    n = math.prod(shape)
    width = spec_input.high - spec_input.low
    if spec_input.unique:  # one value per slot of an even grid: neighbours stay apart
        slots = torch.randperm(n, generator=generator).to(torch.float64)
        jitter = 0.25 + 0.5 * torch.rand(n, generator=generator, dtype=torch.float64)
        unit = (slots + jitter) / n
    else:
        unit = uniform((n,), seed)
    values = _clear_of_kinks(spec_input.low + width * unit, spec_input)
    return _rounded(values.reshape(shape), dtype)


def _generated_integers(spec_input: Input, shape, generator, dims) -> torch.Tensor:
    dtype = getattr(torch, spec_input.dtype)
    if spec_input.dtype == "bool":
        return torch.rand(shape, generator=generator) < 0.5
    low, high = (int(b) for b in spec_input.bounds(dims))
    n = math.prod(shape)
    if spec_input.unique and high - low >= n:  # distinct: a random choice without repeats
        return (low + torch.randperm(high - low, generator=generator)[:n]).reshape(shape).to(dtype)
    return torch.randint(low, high, shape, generator=generator).to(dtype)


def _flushed(values: np.ndarray, spec_input: Input) -> np.ndarray:
    """0 for magnitudes far below the domain's, where products underflow and prove nothing."""
    if not spec_input.low <= 0.0 <= spec_input.high:
        return values
    tiny = TINY_FRACTION * max(abs(spec_input.low), abs(spec_input.high))
    return np.where(np.abs(values) < tiny, 0.0, values)


def _representable_bounds(low: float, high: float, width: int) -> tuple[float, float]:
    """The domain's bounds rounded inwards to floats of ``width`` bits (0.05 is not one)."""
    if width == 64:
        return low, high
    kind = np.float32 if width == 32 else np.float16
    inward_low, inward_high = kind(low), kind(high)
    if inward_low < low:
        inward_low = np.nextafter(inward_low, kind(np.inf))
    if inward_high > high:
        inward_high = np.nextafter(inward_high, kind(-np.inf))
    return float(inward_low), float(inward_high)


def _unique_elements(spec_input: Input) -> st.SearchStrategy[float]:
    step = (spec_input.high - spec_input.low) / UNIQUE_GRID
    margin = KINK_CLEARANCE * (spec_input.high - spec_input.low)
    grid = st.integers(0, UNIQUE_GRID).map(lambda k: spec_input.low + k * step)
    return grid.filter(lambda v: _clear(v, spec_input, margin)) if spec_input.kinks else grid


def _away_from_kinks(values: np.ndarray, spec_input: Input, margin: float) -> np.ndarray:
    """Each value within ``margin`` of a kink moved to that distance (on its side, or
    mirrored to the other where that side leaves the domain), kink after kink."""
    for kink in spec_input.kinks:
        pushed = np.where(values >= kink, kink + margin, kink - margin)
        inside = (spec_input.low <= pushed) & (pushed <= spec_input.high)
        pushed = np.where(inside, pushed, 2 * kink - pushed)
        values = np.where(np.abs(values - kink) < margin, pushed, values)
    return values


def _clear(values: np.ndarray | float, spec_input: Input, margin: float) -> bool:
    values = np.asarray(values)
    inside = (spec_input.low <= values) & (values <= spec_input.high)
    for kink in spec_input.kinks:
        inside &= np.abs(values - kink) >= margin * 0.999
    return bool(inside.all())


def _clear_of_kinks(values: torch.Tensor, spec_input: Input) -> torch.Tensor:
    margin = KINK_CLEARANCE * (spec_input.high - spec_input.low)
    for kink in spec_input.kinks:
        offset = values - kink
        near = offset.abs() < margin
        pushed = kink + torch.where(offset >= 0, margin, -margin) * 1.001
        inside = (pushed >= spec_input.low) & (pushed <= spec_input.high)
        values = torch.where(near, torch.where(inside, pushed, 2 * kink - pushed), values)
    return values


def _rounded(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round to ``dtype`` and back, so the float64 oracle sees exactly the checked point."""
    return values.to(dtype).to(torch.float64)

