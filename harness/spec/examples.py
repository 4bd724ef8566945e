"""Examples: the points a check runs at, explicit (from the spec) or drawn by Hypothesis."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from harness.errors import SpecError, at_key, did_you_mean
from harness.spec.input import Input, is_real, leaf_names


class SpecLike(Protocol):
    """What examples are checked against: a Spec's inputs, dims and params (not the Spec
    itself, which checks its examples as it is built)."""

    inputs: Mapping[str, Input]
    dims: Mapping[str, tuple[int, int]]
    params: Mapping[str, tuple]

    @property
    def differentiable(self) -> tuple[str, ...]: ...

EXAMPLE_OPTIONS = ("expected", "rtol", "atol")


@dataclass(frozen=True)
class Example:
    """Input values (CPU) at given dims and params, and the seed of the cotangent.

    ``values`` holds one tensor per leaf (``leaf_names``: an input, or each tensor of
    a list input): float64 (complex128 where a value is complex) for float inputs,
    their own dtype for integer and bool ones. ``counts`` gives each list input's
    length. ``expected`` holds gradients known from elsewhere (a textbook, a
    notebook), taken with a unit cotangent; ``index`` is the position in
    ``Spec.examples`` of an explicit example, ``None`` for one that Hypothesis drew.
    """

    dims: dict[str, int]
    values: dict[str, torch.Tensor]
    cotangent_seed: int
    expected: dict[str, torch.Tensor] = field(default_factory=dict)
    rtol: float | None = None
    atol: float | None = None
    index: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def describe(self, limit: int = 8) -> str:
        """``N=1, D=1; dim=-1; X=[[1.0]], W=[[0.0]]``: small tensors whole, large ones
        summarised."""
        parts = [", ".join(f"{name}={size}" for name, size in self.dims.items()),
                 ", ".join(f"{name}={value!r}" for name, value in self.params.items()),
                 ", ".join(f"{name}={describe_tensor(value, limit)}"
                           for name, value in self.values.items())]
        return "; ".join(part for part in parts if part)


def describe_tensor(value: torch.Tensor, limit: int = 8, digits: int | None = None) -> str:
    """Small tensors whole (exactly, or to ``digits`` significant digits), large ones by
    their range.

    >>> describe_tensor(torch.tensor([1.25, -1.8123456], dtype=torch.float64), digits=4)
    '[1.25, -1.812]'
    """
    if value.numel() <= limit:
        values = value.detach().cpu().tolist()
        return repr(values) if digits is None else _rounded_repr(values, digits)
    flat = value.detach().flatten().double()
    return (
        f"<{tuple(value.shape)} tensor, min={flat.min().item():.4g}, "
        f"max={flat.max().item():.4g}, mean={flat.mean().item():.4g}>"
    )


def _rounded_repr(values, digits: int) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_rounded_repr(v, digits) for v in values) + "]"
    return f"{values:.{digits}g}" if isinstance(values, float) else repr(values)


def uniform(shape: Sequence[int], seed: int) -> torch.Tensor:
    """Reproducible float64 values uniform in [0, 1), from numpy's PCG64 generator: at 10^5
    elements it draws in a third of the time torch's CPU generator takes for doubles (which
    cost more than the forward of a small elementwise function).

    >>> a, b = uniform((2, 3), seed=5), uniform((2, 3), seed=5)
    >>> a.shape, a.dtype, bool(torch.equal(a, b)), bool(((a >= 0) & (a < 1)).all())
    (torch.Size([2, 3]), torch.float64, True, True)
    """
    return torch.from_numpy(np.random.default_rng(seed).random(tuple(shape)))


def signed_uniform(shape: Sequence[int], seed: int, low: float, high: float) -> torch.Tensor:
    """Magnitudes uniform in [low, high] with random signs, from one draw (see
    ``uniform_magnitudes``)."""
    magnitudes, centred = _magnitudes(shape, seed, low, high)
    return _drawn_tensor(np.copysign(magnitudes, centred, out=magnitudes))


def uniform_magnitudes(
    shape: Sequence[int], seed: int, low: float, high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(magnitudes uniform in [low, high], a tensor whose signs are random), from one draw:
    u - 1/2 in [-1/2, 1/2) gives the sign and, as 2 |u - 1/2|, the place between low and
    high (the values of 2u - 1 bit for bit, exact as both are, in one pass less). Kept
    apart for a caller that needs the magnitudes too (the oracle keeps its direction's |u|).

    >>> magnitudes, signs = uniform_magnitudes((1000,), seed=3, low=0.5, high=1.5)
    >>> bool(((magnitudes >= 0.5) & (magnitudes <= 1.5)).all()), bool((signs < 0).any())
    (True, True)
    """
    magnitudes, centred = _magnitudes(shape, seed, low, high)
    return _drawn_tensor(magnitudes), _drawn_tensor(centred)


def _magnitudes(shape: Sequence[int], seed: int, low: float, high: float):
    # In numpy, on the draw's own array: at 10^5 elements a sixth faster than torch's
    # passes (which split each small pass over threads), and the same values bit for bit.
    centred = uniform(shape, seed).numpy()
    centred -= 0.5
    magnitudes = np.abs(centred, out=np.empty_like(centred))  # out=: 0-d stays an array
    magnitudes *= 2 * (high - low)
    magnitudes += low
    return magnitudes, centred


def _drawn_tensor(array: np.ndarray) -> torch.Tensor:
    """The array as a tensor, sharing its memory; an empty one afresh, with the strides
    of its shape (numpy gives an empty array zero strides, which view_as_complex refuses)."""
    return torch.from_numpy(array) if array.size else torch.empty(array.shape,
                                                                  dtype=torch.float64)


def cotangent(shape: torch.Size, seed: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A reproducible random cotangent whose entries are never near 0 or 1.

    Magnitudes in [1.25, 2] with random signs (each part of a complex one): a backward
    that ignores ``grad`` (treats it as ones) or scales it wrongly disagrees with
    autograd, and one that drops a conjugate sees an imaginary part it should not.
    """
    value = signed_uniform((*shape, 2) if dtype.is_complex else shape, seed, 1.25, 2.0)
    if dtype.is_complex:
        value = torch.view_as_complex(value)
    return value.to(dtype=dtype, device=device)


def checked_examples(examples: object, spec: SpecLike) -> tuple[Example, ...]:
    if isinstance(examples, (str, Mapping)) or not isinstance(examples, Sequence):
        raise SpecError(
            f"examples={examples!r} must be a list of tables, one per example, "
            f"each giving a value for every input"
        )
    return tuple(_checked_example(example, i, spec) for i, example in enumerate(examples))


def _checked_example(example: object, index: int, spec: SpecLike) -> Example:
    with at_key(f"examples[{index}]"):
        return _example(example, index, spec)


def _example(example: object, index: int, spec: SpecLike) -> Example:
    where = f"examples[{index}]"
    if not isinstance(example, Mapping):
        raise SpecError(f"{where}={example!r} must be a table of input values")
    known = [*spec.inputs, *spec.dims, *spec.params, *EXAMPLE_OPTIONS]
    kinds = ["an input", *(["a dim"] if spec.dims else []), *(["a param"] if spec.params else [])]
    for key in example:
        if key not in known:
            raise SpecError(
                f"{where} names {key!r}, which is not {' or '.join(kinds)}"
                f"{did_you_mean(key, known)} — the inputs are {', '.join(spec.inputs)}"
            )
    missing = [name for name in spec.inputs if name not in example]
    if missing:
        raise SpecError(f"{where} gives no value for {', '.join(map(repr, missing))} — add it")
    values, counts = {}, {}
    for name, spec_input in spec.inputs.items():
        tensors = _input_values(example[name], spec_input, f"{where}.{name}")
        if spec_input.count is not None:
            counts[name] = _checked_count(len(tensors), spec_input, f"{where}.{name}")
        values.update(zip(leaf_names(name, spec_input, len(tensors)), tensors))
    dims = _inferred_dims(values, example, spec, where)
    for name, spec_input in spec.inputs.items():
        for leaf in leaf_names(name, spec_input, counts.get(name)):
            _check_in_bounds(values[leaf], spec_input, dims, f"{where}.{name}")
    params = {name: _param(example, name, choices, where) for name, choices in
              spec.params.items()}
    expected = _checked_expected(example.get("expected", {}), values, counts, spec, where)
    tolerances = {key: _tolerance(example.get(key), f"{where}.{key}") for key in ("rtol", "atol")}
    return Example(dims, values, cotangent_seed=index, expected=expected, index=index,
                   params=params, counts=counts, **tolerances)


def _input_values(value: Any, spec_input: Input, where: str) -> list[torch.Tensor]:
    """The tensors an example gives an input: one, or a list input's each."""
    if spec_input.count is None:
        return [_tensor(value, where, spec_input.dtype)]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SpecError(f"{where}={value!r} is not a list of tensors — a list input takes "
                        f"one value per tensor, e.g. [[1.0, 2.0], [3.0, 4.0]]")
    return [_tensor(item, f"{where}[{i}]", spec_input.dtype) for i, item in enumerate(value)]


def _checked_count(count: int, spec_input: Input, where: str) -> int:
    low, high = spec_input.count
    if not low <= count <= high:
        raise SpecError(f"{where} gives {count} tensors, outside count={list(spec_input.count)}"
                        f" — give between {low} and {high}")
    return count


def _param(example: Mapping, name: str, choices: tuple, where: str) -> Any:
    """The example's value of a param (any value it names), else its first choice."""
    return example[name] if name in example else choices[0]


def _check_in_bounds(value: torch.Tensor, spec_input: Input, dims, where: str) -> None:
    if not spec_input.is_integral or spec_input.dtype == "bool" or not value.numel():
        return
    low, high = spec_input.bounds(dims)
    if int(value.min()) < low or int(value.max()) >= high:
        shown = "[" + ", ".join(f"{b}={dims[b]}" if isinstance(b, str) else str(b)
                                for b in (spec_input.low, spec_input.high)) + ")"
        raise SpecError(f"{where} holds values outside {shown} — an integer input is drawn "
                        f"from [low, high), high exclusive")


def _tensor(value: Any, where: str, dtype: str | None = None) -> torch.Tensor:
    """A float input's value as float64 (complex128 if complex), an integer or bool one's
    in its own dtype: never silently converted."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise SpecError(
            f"{where}={value!r} is not a number or a rectangular nested list of "
            f"numbers ({error})"
        ) from None
    if dtype is not None:
        if tensor.is_floating_point() or tensor.is_complex():
            raise SpecError(f"{where}={value!r} holds non-integer values for a {dtype} input "
                            f"— give {'true/false' if dtype == 'bool' else 'integers'}")
        return tensor.to(getattr(torch, dtype))
    # Read again in the wide dtype: Python floats read at torch's default dtype (float32)
    # would round 1.9245 to 1.9244999885559082 before any widening.
    tensor = torch.as_tensor(value, dtype=torch.complex128 if tensor.is_complex() else
                             torch.float64)
    if not torch.isfinite(tensor).all():
        raise SpecError(f"{where}={value!r} holds a non-finite value — give finite numbers")
    return tensor


def _inferred_dims(
    values: Mapping[str, torch.Tensor], example: Mapping, spec: SpecLike, where: str
) -> dict[str, int]:
    """The dims the values' shapes give (and those the example names, like ``V = 5`` for a
    dim only an integer input's bound uses)."""
    dims: dict[str, int] = {d: _dim_size(example[d], f"{where}.{d}") for d in spec.dims
                            if d in example}
    for leaf, value in values.items():
        name = leaf.partition("[")[0]
        declared = spec.inputs[name].shape
        if value.dim() != len(declared):
            raise SpecError(
                f"{where}.{name} has shape {tuple(value.shape)} but the input is declared "
                f"with shape {list(declared)} — give a value of that shape"
            )
        for size, actual in zip(declared, value.shape):
            if isinstance(size, str):
                if dims.setdefault(size, actual) != actual:
                    given = "the example" if size in example else "an earlier input"
                    raise SpecError(
                        f"{where}.{name} gives dim {size!r} size {actual}, but {given} gave "
                        f"it size {dims[size]} — make the shapes agree"
                    )
            elif size != actual:
                raise SpecError(
                    f"{where}.{name} has shape {tuple(value.shape)} but the input is "
                    f"declared with shape {list(declared)} — give a value of that shape"
                )
    unknown = [name for name in spec.dims if name not in dims]
    if unknown:
        raise SpecError(f"{where} does not tell the size of dim {unknown[0]!r} (no input's "
                        f"shape names it) — give it in the example, e.g. {unknown[0]} = 5")
    return {name: dims[name] for name in spec.dims}


def _dim_size(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{where}={value!r} is not a size — give a non-negative integer")
    return value


def _checked_expected(
    expected, values, counts, spec: SpecLike, where: str
) -> dict[str, torch.Tensor]:
    if not isinstance(expected, Mapping):
        raise SpecError(f"{where}.expected={expected!r} must map input names to gradients")
    checked = {}
    for name, gradient in expected.items():
        if name not in spec.differentiable:
            raise SpecError(
                f"{where}.expected names {name!r}, which is not an input with a gradient"
                f"{did_you_mean(name, spec.differentiable)} — "
                f"those are {', '.join(spec.differentiable)}"
            )
        spec_input = spec.inputs[name]
        gradients = _input_values(gradient, Input(spec_input.shape, count=spec_input.count),
                                  f"{where}.expected.{name}")
        for leaf, tensor in zip(leaf_names(name, spec_input, counts.get(name)), gradients):
            if tensor.shape != values[leaf].shape:
                raise SpecError(
                    f"{where}.expected.{name} has shape {tuple(tensor.shape)} but input "
                    f"{leaf!r} has shape {tuple(values[leaf].shape)} — a gradient has its "
                    f"input's shape"
                )
            checked[leaf] = tensor
    return checked


def _tolerance(value: object, where: str) -> float | None:
    if value is None:
        return None
    if not is_real(value) or not 0 <= value < math.inf:
        raise SpecError(f"{where}={value!r} must be a number >= 0, e.g. 1e-3")
    return float(value)
