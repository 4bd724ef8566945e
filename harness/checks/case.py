"""One example of a spec made concrete: what every check compares, computed once, on first use.

A ``Case`` holds the inputs on the device in the item's dtype, the output, the
cotangent, the gradient sources (autograd, the spec's formulas, the reference),
the finite-difference oracle bound to this point (``case.oracle``) and the
rounding noise of each source (``case.rounding``). ``case.compare`` judges two
gradient sources with an allowance whose costly terms are measured only when
the cheap ones do not pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from functools import cached_property

import torch

from harness.checks import evaluate, heap
from harness.checks.oracle import Oracle
from harness.errors import Discarded, Fault
from harness.numerics.allowance import ORACLE_ERROR_FACTOR, Allowance, Tolerance
from harness.numerics.compare import Mismatch, judged
from harness.numerics.noise import NoiseModel, Quantity, Values
from harness.report import Failure
from harness.spec import Input, Spec
from harness.spec.examples import Example, cotangent, describe_tensor

# Output k of a tuple forward draws its cotangent from seed + k * COTANGENT_STRIDE (a
# prime, so that the outputs' cotangents share no draws); a single output, from seed.
COTANGENT_STRIDE = 7919


class Case:
    """One example of ``spec`` on ``device`` in ``dtype``."""

    def __init__(self, spec: Spec, example: Example, device: str, dtype: torch.dtype):
        self.spec, self.example, self.device, self.dtype = spec, example, device, dtype
        self.dims = example.dims
        self.values = evaluate.prepared(spec, example, dtype, device)
        self.outputs = evaluate.forward(spec, self.values, example, originals=example.values)
        if torch.device(device).type == "cpu":  # its evaluations' blocks: see checks/heap
            heap.keep_blocks_of(max((t.nbytes for t in (*self.values.values(),
                                                        *self.outputs.tensors)), default=0))
        self.cotangents = tuple(
            cotangent(t.shape, example.cotangent_seed + COTANGENT_STRIDE * k, t.dtype, device)
            for k, t in enumerate(self.outputs.tensors))
        self.leaves = evaluate.leaves_of(spec, example, spec.differentiable)
        self.tolerance = Tolerance.of(
            dtype, spec.tolerances.get(str(dtype).removeprefix("torch.")), spec.nondet_tol)
        self.oracle = Oracle(self)
        self._noise = NoiseModel(self.values, dtype, seed=example.cotangent_seed + 2)
        self._rounding: dict[tuple[str, bool, bool], dict[str, torch.Tensor]] = {}

    @property
    def full_precision(self) -> bool:
        """A float64 (or complex128) item: the oracle's own precision."""
        return self.dtype in (torch.float64, torch.complex128)

    def only_output(self, k: int) -> Case:
        """This case with every cotangent but output k's zero (and nothing computed yet)."""
        single = copy.copy(self)
        single.cotangents = tuple(v if j == k else torch.zeros_like(v)
                                  for j, v in enumerate(self.cotangents))
        for cached in ("autograd", "formula"):
            single.__dict__.pop(cached, None)
        single.oracle = Oracle(single)
        single._rounding = {}
        return single

    def input_of(self, leaf: str) -> Input:
        """The declared input a leaf belongs to (``xs[1]`` belongs to ``xs``)."""
        return self.spec.inputs[leaf.partition("[")[0]]

    @property
    def output_keys(self) -> tuple[str, ...]:
        """How the differentiable outputs are named in a quantity: 'output', or 'output[k]'."""
        if not self.outputs.multi:
            return ("output",)
        return tuple(f"output[{k}]" for k in self.outputs.differentiable)

    # --- the gradient sources -----------------------------------------------------------------

    @cached_property
    def autograd(self) -> dict[str, torch.Tensor]:
        return evaluate.autograd_vjp(self.spec, self.values, self.outputs, self.cotangents,
                                     self.example)

    @cached_property
    def formula(self) -> dict[str, torch.Tensor]:
        return evaluate.formula_vjp(self.spec, self.values, self.outputs, self.cotangents,
                                    self.example)

    @cached_property
    def point64(self) -> dict[str, torch.Tensor]:
        """The item's inputs in float64 (integer ones as they are): exactly the point the
        oracle differentiates at."""
        return {name: evaluate.cast(value.detach(), torch.float64)
                for name, value in self.values.items()}

    @cached_property
    def output64(self) -> tuple[torch.Tensor, ...]:
        """The differentiable outputs at the point, computed in float64."""
        if self.full_precision:
            return tuple(t.detach() for t in self.outputs.tensors)  # already run
        outputs = self.output_at(self.point64, torch.float64)
        return tuple(outputs[key] for key in self.output_keys)

    def reference_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The reference's outputs and autograd gradients at ``point``."""
        values = self._leaves(point)
        result = evaluate.call(self.spec.reference,
                               evaluate.arguments(self.spec, values, self.example))
        outputs = evaluate.Outputs.of(result, "reference", like=next(iter(values.values())),
                                      skipped=self.spec.nondifferentiable_outputs)
        shapes = [tuple(t.shape) for t in outputs.tensors]
        if shapes != [tuple(t.shape) for t in self.outputs.tensors]:
            raise Fault(
                f"reference returned outputs of shapes {shapes}, the forward "
                f"{[tuple(t.shape) for t in self.outputs.tensors]} — make them compute the "
                f"same function")
        grads = evaluate.autograd_vjp(self.spec, values, outputs,
                                      self._cotangents_in(dtype), self.example)
        return {**dict(zip(self.output_keys, outputs.tensors)), **grads}

    # --- quantities, as the noise model reruns them ---------------------------------------------

    def autograd_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        values = self._leaves(point)
        outputs = evaluate.forward(self.spec, values, self.example)
        return evaluate.autograd_vjp(self.spec, values, outputs,
                                     self._cotangents_in(dtype), self.example)

    def formula_at(self, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        values = self._leaves(point)
        outputs = evaluate.forward(self.spec, values, self.example)
        return evaluate.formula_vjp(self.spec, values, outputs,
                                    self._cotangents_in(dtype), self.example)

    def output_at(self, point: Values, dtype: torch.dtype, *,
                  finite: bool = True) -> dict[str, torch.Tensor]:
        """The differentiable outputs at ``point`` (no graph), checked finite unless
        ``finite`` is False."""
        with torch.no_grad():
            result = evaluate.call(self.spec.forward,
                                   evaluate.arguments(self.spec, point, self.example))
        outputs = evaluate.Outputs.of(result, "forward", like=None, finite=finite,
                                      skipped=self.spec.nondifferentiable_outputs)
        return dict(zip(self.output_keys, outputs.tensors))

    def _cotangents_in(self, dtype: torch.dtype) -> list[torch.Tensor]:
        return [evaluate.cast(v, dtype) for v in self.cotangents]

    def _leaves(self, point: Values) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone().requires_grad_(
                    self.input_of(name).requires_grad)
                for name, value in point.items()}

    def rounding(
        self, source: str, quantity: Quantity | None = None, *, in_float64: bool = False,
        neighbours: bool = True, runs: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The rounding noise of a source, per element, measured once: of 'autograd',
        'formula', 'reference' or 'output' (the methods ``<source>_at``), or of
        ``quantity`` under the name ``source``; in the item's dtype, or in float64;
        ``neighbours`` and ``runs`` as for ``NoiseModel.measure`` (the whole measure,
        where it was taken already, stands for fewer runs)."""
        key = (source, in_float64 or self.full_precision, neighbours)
        if runs is not None and key in self._rounding:
            return self._rounding[key]
        if runs is not None:
            key = (*key, runs)
        if key not in self._rounding:
            model = self._noise64 if key[1] else self._noise
            self._rounding[key] = model.measure(quantity or getattr(self, f"{source}_at"),
                                                neighbours=neighbours, runs=runs)
        return self._rounding[key]

    @cached_property
    def _noise64(self) -> NoiseModel:
        if self.full_precision:
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
        those do not pass — the measured rounding of each of ``sources``, in the tiers
        of ``judged``."""
        cheap = self.allowance(expected, oracle_error=oracle_error, **(extra or {}))
        if not sources:
            return judged(actual, expected, cheap)

        def measured(runs: int | None) -> dict[str, torch.Tensor]:
            return {f"{source} rounding": self.rounding(source, runs=runs)[name]
                    for source in sources}

        return judged(actual, expected, cheap, measured)

    def allowance(
        self, expected: torch.Tensor, *, oracle_error: torch.Tensor | None = None,
        **terms: torch.Tensor,
    ) -> Allowance:
        """The floor for ``expected``, plus the oracle's error and any named ``terms``."""
        allowance = self.tolerance.floor(expected)
        if oracle_error is not None:
            allowance = allowance.plus(oracle=ORACLE_ERROR_FACTOR * oracle_error.cpu())
        return allowance.plus(**terms)

    def _detached_outputs(self) -> list[int]:
        """The differentiated outputs autograd recorded no graph for: their cotangent reaches
        no gradient, while finite differences see them move."""
        return [k for k, t in zip(self.outputs.differentiable, self.outputs.tensors)
                if not t.requires_grad] if self.outputs.multi else []

    def _detached_hint(self) -> str:
        indices = self._detached_outputs()
        which = ", ".join(str(k) for k in indices)
        return (f"Output{'s' if len(indices) > 1 else ''} {which} of the forward carr"
                f"{'y' if len(indices) > 1 else 'ies'} no gradient (detached, or marked "
                f"non-differentiable): if autograd is not meant to differentiate "
                f"{'them' if len(indices) > 1 else 'it'}, declare "
                f"nondifferentiable_outputs=[{which}]")

    def discard_if_forward_differs(self) -> None:
        """Below float64, the float64 oracle differentiates the forward run in float64 at the
        item's point: where the forward in the item's dtype is another function there
        (fractional_max_pool draws its pooling regions with torch.rand in the input's
        dtype), beyond what its measured rounding allows, the oracle cannot judge the
        item's gradient — the example is discarded, saying why, not blamed on the backward."""
        if self.full_precision:
            return
        for key, low, wide in zip(self.output_keys, self.outputs.tensors, self.output64):
            mismatch = self.compare(low.detach(), wide, key, sources=("output",))
            if mismatch and mismatch.shapes is None:
                dtype = str(self.dtype).removeprefix("torch.")
                raise Discarded(
                    f"the {dtype} forward is another function than the float64 one here: its"
                    f" {key} is {mismatch.abs_diff:.3g} from the float64 forward's "
                    f"at the same point, {mismatch.abs_allowed:.2g} allowed — the float64 "
                    f"oracle cannot judge this gradient")

    def nondeterminism(self) -> str | None:
        """How the forward's outputs differ when it runs again at this point (beyond the
        spec's nondet_tol), or None when they do not. It runs as the first run did, with
        the graph recorded: an op may take another path without (the nuclear norm's SVD
        computes U and V for its backward, and rounds otherwise by 1e-14)."""
        again = dict(zip(self.output_keys, evaluate.forward(self.spec, self.values,
                                                            self.example).detached().tensors))
        first = dict(zip(self.output_keys, self.outputs.tensors))
        for key, value in first.items():
            if again[key].shape != value.shape:
                return f"its {key} had shape {tuple(again[key].shape)} the second time, " \
                       f"{tuple(value.shape)} the first"
            difference = (again[key] - value.detach()).abs().nan_to_num(nan=float("inf"))
            if difference.numel() and float(difference.max()) > self.spec.nondet_tol:
                return f"two runs differ by up to {float(difference.max()):.3g}"
        return None

    def failure(self, summary: str, verdict: str = "", details=(), name=None) -> Failure:
        if name is not None and self._detached_outputs():
            details = [*details, self._detached_hint()]
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
            cotangent="; ".join(  # to 8 digits, as the table shows values
                f"{key}: {describe_tensor(v, digits=8)}" if self.outputs.multi
                else describe_tensor(v, digits=8)
                for key, v in zip(self.output_keys, self.cotangents)),
        )
