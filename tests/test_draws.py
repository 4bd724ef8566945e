"""The random draws the checks rest on: the cotangents and the oracle's directions."""

from __future__ import annotations

import pytest
import torch

from harness import Input, Spec
from harness.checks.case import Case
from harness.spec.examples import Example, cotangent

SHAPES = [(), (0,), (2, 0), (3,), (1, 1), (4, 5)]
DTYPES = [torch.float32, torch.float64, torch.complex64, torch.complex128]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_cotangent_of_any_shape_is_reproducible_and_never_near_zero_or_one(shape, dtype):
    drawn = cotangent(shape, 11, dtype, "cpu")
    assert drawn.shape == shape and drawn.dtype == dtype
    assert torch.equal(drawn, cotangent(shape, 11, dtype, "cpu"))
    parts = torch.view_as_real(drawn) if dtype.is_complex else drawn
    assert bool(((parts.abs() >= 1.25) & (parts.abs() <= 2.0)).all())


def test_cotangents_take_both_signs():
    drawn = cotangent((1000,), 3, torch.float64, "cpu")
    assert bool((drawn < 0).any()) and bool((drawn > 0).any())


def _case(size: int) -> Case:
    spec = Spec(name="square", forward=lambda x: x * x, inputs={"x": Input(["n"])},
                dims={"n": (1, size)})
    x = torch.linspace(-3, 3, size, dtype=torch.float64)
    example = Example(dims={"n": size}, values={"x": x}, cotangent_seed=4)
    return Case(spec, example, "cpu", torch.float64)


def test_the_oracles_direction_keeps_its_magnitudes_from_the_draw():
    case = _case(1000)  # the oracle refers to its case weakly: keep it
    oracle = case.oracle
    direction = oracle.direction("x")
    assert torch.equal(oracle.weights("x", direction), direction.abs())
    # It moves every element: the oracle counts sum |x| as what its steps move.
    assert bool((direction != 0).all())
    scaled = direction / oracle.scale("x")
    assert bool(((scaled.abs() >= 0.5) & (scaled.abs() <= 1.5)).all())


def test_another_directions_magnitudes_are_its_own():
    case = _case(1000)
    oracle = case.oracle
    other = oracle.direction("x").clone()
    other[::2] = 0
    assert torch.equal(oracle.weights("x", other), other.abs())
