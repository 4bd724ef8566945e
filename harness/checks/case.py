"""One example of a spec made concrete: what every check compares, computed once, on first use.

A ``Case`` holds the inputs on the device in the item's dtype, the output, the
cotangent, the gradient sources (autograd, the spec's formulas, the reference),
the finite-difference oracle bound to this point (``case.oracle``) and the
rounding noise of each source (``case.rounding``). ``case.compare`` judges two
gradient sources with an allowance whose costly terms are measured only when
the cheap ones do not pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import torch

from harness.checks import evaluate
from harness.checks.oracle import Oracle
from harness.errors import Fault
from harness.numerics.allowance import ORACLE_ERROR_FACTOR, Allowance, Tolerance
from harness.numerics.compare import Mismatch, judged
from harness.numerics.noise import NoiseModel, Quantity, Values
from harness.report import Failure
from harness.spec import Spec
from harness.spec.examples import Example, cotangent, describe_tensor


class Case:
    """One example of ``spec`` on ``device`` in ``dtype``."""

    def __init__(self, spec: Spec, example: Example, device: str, dtype: torch.dtype):
        self.spec, self.example, self.device, self.dtype = spec, example, device, dtype
        self.dims = example.dims
        self.values = evaluate.prepared(spec, example, dtype, device)
        self.result = evaluate.forward(spec, self.values, self.dims)
        self.cotangent = cotangent(self.result.shape, example.cotangent_seed, dtype, device)
        self.tolerance = Tolerance.of(
            dtype, spec.tolerances.get(str(dtype).removeprefix("torch.")), spec.nondet_tol)
        self.oracle = Oracle(self)
        self._noise = NoiseModel(self.values, dtype, seed=example.cotangent_seed + 2)
        self._rounding: dict[tuple[str, bool, bool], dict[str, torch.Tensor]] = {}

    # --- the gradient sources -----------------------------------------------------------------

    @cached_property
    def autograd(self) -> dict[str, torch.Tensor]:
        return evaluate.autograd_vjp(self.spec, self.values, self.result, self.cotangent)

    @cached_property
    def formula(self) -> dict[str, torch.Tensor]:
        return evaluate.formula_vjp(
            self.spec, self.values, self.dims, self.result, self.cotangent)

    @cached_property
    def point64(self) -> dict[str, torch.Tensor]:
        """The item's inputs in float64: exactly the point the oracle differentiates at."""
        return {name: value.detach().to(torch.float64) for name, value in self.values.items()}

    @cached_property
    def output64(self) -> torch.Tensor:
        if self.dtype == torch.float64:
            return self.result.detach()  # the forward at this very point, already run
        with torch.no_grad():
            return self.output_at(self.point64, torch.float64)["output"]

    def reference_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The reference's output and autograd gradients at ``point``."""
        values = self._leaves(point)
        output = evaluate.checked_output(
            evaluate.call(self.spec.reference, {**values, **self.dims}), "reference",
            next(iter(values.values())))
        if output.shape != self.result.shape:
            raise Fault(
                f"reference returned shape {tuple(output.shape)}, the forward returns "
                f"{tuple(self.result.shape)} — make them compute the same function")
        grads = evaluate.autograd_vjp(self.spec, values, output, self.cotangent.to(dtype))
        return {"output": output, **grads}

    # --- quantities, as the noise model reruns them ---------------------------------------------

    def autograd_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        values = self._leaves(point)
        result = evaluate.forward(self.spec, values, self.dims)
        return evaluate.autograd_vjp(self.spec, values, result, self.cotangent.to(dtype))

    def formula_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        values = self._leaves(point)
        result = evaluate.forward(self.spec, values, self.dims)
        return evaluate.formula_vjp(self.spec, values, self.dims, result,
                                    self.cotangent.to(dtype))

    def output_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"output": evaluate.call(self.spec.forward, {**point, **self.dims})}

    def _leaves(self, point: Values) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone().requires_grad_(self.spec.inputs[name].requires_grad)
                for name, value in point.items()}

    def rounding(
        self, source: str, quantity: Quantity | None = None, *, in_float64: bool = False,
        neighbours: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The rounding noise of a source, per element, measured once: of 'autograd',
        'formula', 'reference' or 'output' (the methods ``<source>_at``), or of
        ``quantity`` under the name ``source``; in the item's dtype, or in float64;
        ``neighbours`` as for ``NoiseModel.measure``."""
        key = (source, in_float64 or self.dtype == torch.float64, neighbours)
        if key not in self._rounding:
            model = self._noise64 if key[1] else self._noise
            self._rounding[key] = model.measure(quantity or getattr(self, f"{source}_at"),
                                                neighbours=neighbours)
        return self._rounding[key]

    @cached_property
    def _noise64(self) -> NoiseModel:
        if self.dtype == torch.float64:
            return self._noise
        return NoiseModel(self.point64, torch.float64, seed=self.example.cotangent_seed + 2)

    # --- judging ----------------------------------------------------------------------------------

    def compare(
        self, actual: torch.Tensor, expected: torch.Tensor, name: str, *,
        sources: Sequence[str] = ("autograd",), oracle_error: torch.Tensor | None = None,
        extra: Mapping[str, torch.Tensor] | None = None,
    ) -> Mismatch | None:
        """``actual`` against ``expected`` for input (or output) ``name``: the floor, the
        oracle's error where one side is the oracle, ``extra`` terms, and — only where
        those do not pass — the measured rounding of each of ``sources``."""
        cheap = self.allowance(expected, oracle_error=oracle_error, **(extra or {}))

        def measured() -> dict[str, torch.Tensor]:
            return {f"{source} rounding": self.rounding(source)[name] for source in sources}

        return judged(actual, expected, cheap, measured if sources else None)

    def allowance(
        self, expected: torch.Tensor, *, oracle_error: torch.Tensor | None = None,
        **terms: torch.Tensor,
    ) -> Allowance:
        """The floor for ``expected``, plus the oracle's error and any named ``terms``."""
        allowance = self.tolerance.floor(expected)
        if oracle_error is not None:
            allowance = allowance.plus(oracle=ORACLE_ERROR_FACTOR * oracle_error.cpu())
        return allowance.plus(**terms)

    def nondeterminism(self) -> str | None:
        """How the forward's output differs when it runs again at this point (beyond the
        spec's nondet_tol), or None when it does not."""
        with torch.no_grad():
            again = evaluate.call(self.spec.forward, {**self.values, **self.dims})
        if not isinstance(again, torch.Tensor) or again.shape != self.result.shape:
            return f"it returned {type(again).__name__} {getattr(again, 'shape', '')} the " \
                   f"second time, {tuple(self.result.shape)} the first"
        difference = (again.detach() - self.result.detach()).abs().nan_to_num(nan=float("inf"))
        if difference.numel() == 0 or float(difference.max()) <= self.spec.nondet_tol:
            return None
        return f"two runs differ by up to {float(difference.max()):.3g}"

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
            cotangent=describe_tensor(self.cotangent, digits=8),  # as the table shows values
        )
