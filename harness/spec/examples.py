"""Examples: the points a check runs at, explicit (from the spec) or drawn by Hypothesis."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from harness.errors import SpecError, at_key, did_you_mean
from harness.spec.input import Input, is_real


class SpecLike(Protocol):
    """What examples are checked against: a Spec's inputs and dims (not the Spec itself,
    which checks its examples as it is built)."""

    inputs: Mapping[str, Input]
    dims: Mapping[str, tuple[int, int]]

    @property
    def differentiable(self) -> tuple[str, ...]: ...

EXAMPLE_OPTIONS = ("expected", "rtol", "atol")


@dataclass(frozen=True)
class Example:
    """Input values (float64, CPU) at given dims, and the seed of the cotangent.

    ``expected`` holds gradients known from elsewhere (a textbook, a notebook),
    taken with a unit cotangent; ``index`` is the position in ``Spec.examples``
    of an explicit example, ``None`` for one that Hypothesis drew.
    """

    dims: dict[str, int]
    values: dict[str, torch.Tensor]
    cotangent_seed: int
    expected: dict[str, torch.Tensor] = field(default_factory=dict)
    rtol: float | None = None
    atol: float | None = None
    index: int | None = None

    def describe(self, limit: int = 8) -> str:
        """``N=1, D=1; X=[[1.0]], W=[[0.0]]``: small tensors whole, large ones summarised."""
        dims = ", ".join(f"{name}={size}" for name, size in self.dims.items())
        values = ", ".join(
            f"{name}={describe_tensor(value, limit)}" for name, value in self.values.items()
        )
        return f"{dims}; {values}" if dims else values


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


def cotangent(shape: torch.Size, seed: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A reproducible random cotangent whose entries are never near 0 or 1.

    Magnitudes in [1.25, 2] with random signs: a backward that ignores ``grad``
    (treats it as ones) or scales it wrongly disagrees with autograd.
    """
    generator = torch.Generator().manual_seed(seed)
    magnitude = 1.25 + 0.75 * torch.rand(shape, generator=generator, dtype=torch.float64)
    sign = torch.randint(0, 2, shape, generator=generator) * 2 - 1
    return (magnitude * sign).to(dtype=dtype, device=device)


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
    for key in example:
        if key not in spec.inputs and key not in EXAMPLE_OPTIONS:
            raise SpecError(
                f"{where} names {key!r}, which is not an input"
                f"{did_you_mean(key, [*spec.inputs, *EXAMPLE_OPTIONS])} — "
                f"the inputs are {', '.join(spec.inputs)}"
            )
    missing = [name for name in spec.inputs if name not in example]
    if missing:
        raise SpecError(f"{where} gives no value for {', '.join(map(repr, missing))} — add it")
    values = {name: _tensor(example[name], f"{where}.{name}") for name in spec.inputs}
    dims = _inferred_dims(values, spec, where)
    expected = _checked_expected(example.get("expected", {}), values, spec, where)
    tolerances = {key: _tolerance(example.get(key), f"{where}.{key}") for key in ("rtol", "atol")}
    return Example(dims, values, cotangent_seed=index, expected=expected, index=index, **tolerances)


def _tensor(value: Any, where: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise SpecError(
            f"{where}={value!r} is not a number or a rectangular nested list of "
            f"numbers ({error})"
        ) from None
    if not torch.isfinite(tensor).all():
        raise SpecError(f"{where}={value!r} holds a non-finite value — give finite numbers")
    return tensor


def _inferred_dims(
    values: Mapping[str, torch.Tensor], spec: SpecLike, where: str
) -> dict[str, int]:
    dims: dict[str, int] = {}
    for name, value in values.items():
        declared = spec.inputs[name].shape
        if value.dim() != len(declared):
            raise SpecError(
                f"{where}.{name} has shape {tuple(value.shape)} but the input is declared "
                f"with shape {list(declared)} — give a value of that shape"
            )
        for size, actual in zip(declared, value.shape):
            if isinstance(size, str):
                if dims.setdefault(size, actual) != actual:
                    raise SpecError(
                        f"{where}.{name} gives dim {size!r} size {actual}, but an earlier "
                        f"input gave it size {dims[size]} — make the shapes agree"
                    )
            elif size != actual:
                raise SpecError(
                    f"{where}.{name} has shape {tuple(value.shape)} but the input is "
                    f"declared with shape {list(declared)} — give a value of that shape"
                )
    return {name: dims[name] for name in spec.dims}


def _checked_expected(expected, values, spec: SpecLike, where: str) -> dict[str, torch.Tensor]:
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
        tensor = _tensor(gradient, f"{where}.expected.{name}")
        if tensor.shape != values[name].shape:
            raise SpecError(
                f"{where}.expected.{name} has shape {tuple(tensor.shape)} but input "
                f"{name!r} has shape {tuple(values[name].shape)} — a gradient has its "
                f"input's shape"
            )
        checked[name] = tensor
    return checked


def _tolerance(value: object, where: str) -> float | None:
    if value is None:
        return None
    if not is_real(value) or not 0 <= value < math.inf:
        raise SpecError(f"{where}={value!r} must be a number >= 0, e.g. 1e-3")
    return float(value)
