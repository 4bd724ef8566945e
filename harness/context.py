"""One example made concrete: inputs on the device, the output, and every gradient source.

Each source is computed at most once per example, on first use, so a check pays
only for what it compares.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import torch

from harness import evaluate, numeric, rounding
from harness.compare import SENSITIVITY_FACTOR, Mismatch, compare, tolerances
from harness.examples import Example, cotangent
from harness.report import Failure
from harness.spec import Spec

ELEMENTWISE_ORACLE = 64  # inputs up to this size get every partial derivative
LOCALISE_LIMIT = 4096  # a failing larger input is localised up to this size
NEIGHBOURS = 4  # neighbouring inputs sampled by the noise model
ROUNDED_RUNS = 4  # runs with simulated rounding sampled by the noise model


class Discarded(Exception):
    """The example is not a point where the gradient can be judged (kink, overflow)."""


class Skipped(Exception):
    """The check cannot run for this spec here (no forward AD, no CUDA)."""


class Context:
    def __init__(self, spec: Spec, example: Example, device: str, dtype: torch.dtype):
        self.spec, self.example, self.device, self.dtype = spec, example, device, dtype
        self.dims = example.dims
        self.values = evaluate.prepared(spec, example, dtype, device)
        self.result = evaluate.forward(spec, self.values, self.dims)
        self.cotangent = cotangent(self.result.shape, example.cotangent_seed, dtype, device)
        self.rtol, self.atol = tolerances(spec, dtype)
        # Values within a rounding error of the smallest normal number (underflow)
        # carry no relative precision: differences below this are not evidence.
        self.floor = torch.finfo(dtype).tiny / torch.finfo(dtype).eps

    @cached_property
    def autograd(self) -> dict[str, torch.Tensor]:
        return evaluate.autograd_vjp(self.spec, self.values, self.result, self.cotangent)

    @cached_property
    def formula(self) -> dict[str, torch.Tensor]:
        return evaluate.formula_vjp(
            self.spec, self.values, self.dims, self.result, self.cotangent
        )

    @cached_property
    def point64(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().to(torch.float64) for name, value in self.values.items()}

    @cached_property
    def output64(self) -> torch.Tensor:
        if self.dtype == torch.float64:
            return self.result.detach()  # the forward at this very point, already run
        with torch.no_grad():
            return self.spec.forward({**self.point64, **self.dims})

    @cached_property
    def phi64(self):
        """<v, f(x) - f(point64)>: 0 at the point, so the oracle never evaluates it there."""
        return evaluate.contracted(self.spec, self.dims, self.cotangent.to(torch.float64),
                                   offset=self.output64)

    @cached_property
    def magnitude(self) -> float:
        """sum |v| |f(x)| in float64: the scale of rounding noise in phi."""
        return float((self.cotangent.to(torch.float64).abs() * self.output64.abs()).sum())

    def scale(self, name: str) -> torch.Tensor:
        return numeric.step_scale(self.point64[name], self.spec.inputs[name])

    def partials(self, name: str) -> numeric.Estimate:
        """Every partial derivative of phi for input ``name``; discards a kinked point."""
        estimate = numeric.partial_derivatives(
            self.phi64, self.point64, name, self.scale(name), self.magnitude, centred=True
        )
        return self._judgeable(estimate)

    def direction(self, name: str) -> torch.Tensor:
        """A random direction, scaled like the input, with no component near zero."""
        generator = torch.Generator().manual_seed(self.example.cotangent_seed + 1)
        shape = self.point64[name].shape
        uniform = 2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1
        signed = torch.copysign(0.5 + uniform.abs(), uniform)  # one draw: size and sign
        return signed.to(self.device) * self.scale(name)

    def gradient_direction(self, name: str, gradient: torch.Tensor) -> torch.Tensor | None:
        """The gradient itself as a direction, scaled like the input; None if it is zero."""
        scale = self.scale(name)
        weighted = gradient.detach().to(torch.float64) * scale
        largest = weighted.abs().max()
        if not largest > 0 or not torch.isfinite(largest):
            return None
        return weighted / largest * scale

    def directional(self, name: str, direction: torch.Tensor) -> numeric.Estimate:
        estimate = numeric.directional_derivative(
            self.phi64, self.point64, {name: direction}, self.magnitude, centred=True
        )
        return self._judgeable(estimate)

    def directional_all(self, directions: dict[str, torch.Tensor]) -> numeric.Estimate:
        """The derivative of phi along several inputs at once (no discarding)."""
        directions = {name: d.to(torch.float64) for name, d in directions.items()}
        return numeric.directional_derivative(
            self.phi64, self.point64, directions, self.magnitude, centred=True
        )

    def _judgeable(self, estimate: numeric.Estimate) -> numeric.Estimate:
        if not estimate.finite:
            raise Discarded("the forward is not finite within a finite-difference step")
        if not bool(estimate.smooth.all()):
            raise Discarded("one-sided differences disagree: not differentiable here")
        return estimate

    @cached_property
    def sensitivity(self) -> dict[str, torch.Tensor]:
        """How far rounding in the item's dtype may move a right gradient.

        The largest of three spreads, each from a few runs: the float64 gradient
        at neighbouring inputs (the mathematics: rounding acts like moving the
        inputs, by backward stability), the gradient computed in the dtype at
        neighbouring inputs (its own rounding, as it changes from one input to
        the next), and the float64 gradient with every operation's result
        rounded at random to the dtype's precision (intermediates that cancel,
        like 1 - s for a saturated sigmoid s, or the mean std's backward
        subtracts). Zero in float64, where every source is computed in float64.
        """
        names = self.spec.differentiable
        if self.dtype == torch.float64:
            return {name: torch.zeros(()) for name in names}
        generator = torch.Generator().manual_seed(self.example.cotangent_seed + 2)
        spread = {name: torch.zeros(self.values[name].shape) for name in names}

        def widen(base, moved):
            for name in names:
                change = (moved[name] - base[name]).abs().double().cpu()
                spread[name] = torch.maximum(spread[name], change)

        for dtype in (torch.float64, self.dtype):
            base = self._gradient(self._rounded(dtype), dtype)
            for _ in range(NEIGHBOURS):
                widen(base, self._gradient(self._next_to(dtype, generator), dtype))
            if dtype == torch.float64:
                for gradient in self._with_simulated_rounding(generator):
                    widen(base, gradient)
        return {name: SENSITIVITY_FACTOR * value for name, value in spread.items()}

    def _with_simulated_rounding(self, generator) -> Iterator[dict[str, torch.Tensor]]:
        """The float64 gradient, rerun with the rounding of the item's dtype simulated."""
        for _ in range(ROUNDED_RUNS):
            try:
                with rounding.SimulatedRounding(self.dtype, generator):
                    gradient = self._gradient(self.point64, torch.float64)
            except Exception:  # an op that refuses a dispatch mode (a compiled kernel):
                return  # the neighbour samples alone stand for rounding, as they did
            yield gradient

    def _rounded(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {name: value.detach().to(dtype) for name, value in self.values.items()}

    def _next_to(self, dtype: torch.dtype, generator) -> dict[str, torch.Tensor]:
        """Every element moved by one or two floats of the item's dtype, up or down.

        Each element draws its own count: were every element moved by one, the
        parity of their sum would never change, nor would a mean's rounding error
        (std of [-10, -9.96]), and a systematic rounding error would look like none.
        """
        moved = {}
        for name, value in self.values.items():
            value = value.detach()
            up = torch.rand(value.shape, generator=generator) < 0.5
            twice = (torch.rand(value.shape, generator=generator) < 0.5).to(value.device)
            target = torch.where(up.to(value.device), torch.inf, -torch.inf).to(value.dtype)
            once = torch.nextafter(value, target)
            moved[name] = torch.where(twice, torch.nextafter(once, target), once).to(dtype)
        return moved

    def _gradient(self, point: dict[str, torch.Tensor], dtype) -> dict[str, torch.Tensor]:
        values = {
            name: value.clone().requires_grad_(self.spec.inputs[name].requires_grad)
            for name, value in point.items()
        }
        result = self.spec.forward({**values, **self.dims})
        return evaluate.autograd_vjp(self.spec, values, result, self.cotangent.to(dtype))

    def compare(
        self, actual: torch.Tensor, expected: torch.Tensor, name: str, error=0.0
    ) -> Mismatch | None:
        slack = self.sensitivity[name] + 3 * torch.as_tensor(error).cpu() + self.floor
        slack = slack + self.spec.nondet_tol  # nondeterministic kernels (atomics) may differ
        return compare(actual, expected, rtol=self.rtol, atol=self.atol, slack=slack,
                       absolute=self.dtype != torch.float64)

    def failure(self, summary: str, verdict: str = "", details=(), name=None) -> Failure:
        return Failure(
            spec=self.spec.name or "?",
            check="",
            device=self.device,
            dtype=str(self.dtype).removeprefix("torch."),
            summary=summary,
            verdict=verdict,
            details=tuple(details),
            example=self.example.describe(),
            explicit=self.example.index,
            location=self.spec.location,
            input=name,
        )
