"""The finite-difference oracle at one case: what it differentiates, along what, and when
it declines to judge.

The oracle differentiates phi(x) = <v, f(x) - f(x0)> in float64 at the case's
point x0 (the item's inputs, rounded to its dtype), with steps scaled to each
element (``harness.numerics.differences``). An estimate it cannot trust — a forward that is
not finite or raises within a step, one-sided differences that disagree (a kink)
— raises ``Discarded``: such an example is counted, never failed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from harness.checks import evaluate
from harness.errors import Discarded
from harness.numerics import differences, richardson, steps
from harness.numerics.allowance import real_view
from harness.spec.examples import uniform_magnitudes

if TYPE_CHECKING:
    from harness.checks.case import Case


class Oracle:
    """The float64 oracle bound to ``case``: partial and directional derivatives of phi.

    It works in real coordinates: a complex input is its real view (real and imaginary
    parts side by side), so that its partial derivatives are those of the parts —
    PyTorch's complex gradient, d/dRe + i d/dIm, seen the same way. Directions,
    estimates and errors come in those coordinates; ``as_input`` turns a direction
    back into the input's own dtype.
    """

    def __init__(self, case: Case):
        # The case owns its oracle; a strong reference back would make a cycle, which
        # the cyclic collector frees some examples later: at 10^5 elements two dozen
        # examples' tensors (190 MB) waited for it, and on a GPU device memory would.
        # Freed as each example ends, they would be trimmed from glibc's heap and
        # faulted back in at every evaluation, but for ``heap.keep_blocks_of``.
        self._case = weakref.ref(case)
        self._partials: dict[tuple[str, bool], richardson.Estimate] = {}
        self._scales: dict[str, torch.Tensor] = {}
        self._directions: dict[str, torch.Tensor] = {}
        self._weights: dict[str, torch.Tensor] = {}  # |u| of each drawn direction
        self._sized: dict[bool, Callable] = {}  # measured -> the sized phi
        self._sizes: dict[bool, torch.Tensor] = {}  # measured -> the terms' sizes
        self._batches: dict[str, bool] = {}
        self._absolute_sums: dict[str, float] = {}

    @property
    def case(self) -> Case:
        """The case this oracle differentiates at (which must outlive it)."""
        case = self._case()
        if case is None:
            raise ReferenceError("the oracle's case was freed — keep the Case while its "
                                 "oracle is in use")
        return case

    @cached_property
    def point(self) -> dict[str, torch.Tensor]:
        """The point in real coordinates."""
        return {name: real_view(value) for name, value in self.case.point64.items()}

    @cached_property
    def phi(self):
        """sum_k Re <v_k, f_k(x)> - sum_k Re <v_k, f_k(x0)>: 0 at the point, so the oracle
        never evaluates it there; of the point in real coordinates. A directional
        derivative's bound counts the rounding of every term, so the outputs at the
        point are subtracted as one scalar, not element by element (``_sized_phi``):
        at 10^5 elements a pass less in each of the twelve evaluations, and the same
        sensitivity (measured in the README)."""
        case = self.case
        return self._of_real_coordinates(evaluate.contracted(
            case.spec, case.example, self.cotangents64, centre=case.output64))

    def _sized_phi(self, measured: bool):
        """phi returning [phi, the size of the terms that moved] (see
        ``differences.partial_derivatives``), for the sizes ``_term_sizes(measured)``."""
        if measured not in self._sized:
            case = self.case
            self._sized[measured] = self._of_real_coordinates(evaluate.contracted(
                case.spec, case.example, self.cotangents64, offsets=case.output64,
                sizes=self._term_sizes(measured)))
        return self._sized[measured]

    def _of_real_coordinates(self, contracted):
        """``contracted`` as a function of the point in real coordinates (a complex input's
        real view turned back into the complex tensor the forward takes)."""
        complex_leaves = [n for n, v in self.case.point64.items() if v.is_complex()]
        if not complex_leaves:
            return contracted

        def phi(values):
            return contracted({n: _as_complex(v) if n in complex_leaves else v
                               for n, v in values.items()})

        return phi

    def as_input(self, name: str, direction: torch.Tensor) -> torch.Tensor:
        """A direction in real coordinates as the input's own (complex where it is)."""
        return _as_complex(direction) if self.case.point64[name].is_complex() else direction

    @cached_property
    def cotangents64(self) -> tuple[torch.Tensor, ...]:
        return tuple(v.to(_wide(v.dtype)) for v in self.case.cotangents)

    @cached_property
    def magnitude(self) -> float:
        """sum |v| |f(x)| in float64 over the outputs: the scale of rounding noise in phi."""
        return self.contracted_size(self.case.output64)

    def contracted_size(self, outputs) -> float:
        """sum over outputs of |v_k| . |outputs_k|, part by part (the size of the terms phi
        sums); ``outputs`` may be real views of complex outputs (a noise measurement,
        which the noise model returns on the CPU whatever the case's device)."""
        return float(sum(torch.dot(size, real_view(o).to(size.device).abs().double().reshape(-1))
                         for size, o in zip(self._cotangent_sizes, outputs)))

    @cached_property
    def _cotangent_sizes(self) -> tuple[torch.Tensor, ...]:
        """|v| of each cotangent, part by part, flat (the Taylor test's every step uses it)."""
        return tuple(real_view(v).abs().double().reshape(-1) for v in self.cotangents64)

    @cached_property
    def measured_magnitude(self) -> float:
        """The scale of phi's rounding noise as measured: at least ``magnitude``, and more
        where the forward rounds far above its own size (log(cosh(d)) near d = 0 rounds
        cosh at 1e-16 before log cancels it), in units of eps."""
        return float(self._term_sizes(True).sum())

    def _term_sizes(self, measured: bool) -> torch.Tensor:
        """|v_i| times the size of each output element (flat, part by part: the terms phi
        sums), whose rounding the oracle counts as EVALUATION_ULPS / 2 ulps an evaluation;
        ``measured``: the larger of that and the element's measured rounding (which is
        what one evaluation may err by, its margin included)."""
        if measured not in self._sizes:
            self._sizes[measured] = self._computed_term_sizes(measured)
        return self._sizes[measured]

    def _computed_term_sizes(self, measured: bool) -> torch.Tensor:
        sizes = [real_view(o).abs().double().reshape(-1) for o in self.case.output64]
        if measured:
            noise = self.case.rounding("output", in_float64=True)
            per_ulps = richardson.EVALUATION_ULPS / 2 * richardson.EPS64
            sizes = [torch.maximum(size, real_view(noise[key]).to(size.device).reshape(-1)
                                   / per_ulps)
                     for size, key in zip(sizes, self.case.output_keys)]
        return torch.cat([v.to(s.device) * s for v, s in zip(self._cotangent_sizes, sizes)])

    def _magnitude(self, measured: bool) -> float:
        return self.measured_magnitude if measured else self.magnitude

    def scale(self, name: str) -> torch.Tensor:
        """Each element's step scale, in real coordinates (computed once per input)."""
        if name not in self._scales:
            self._scales[name] = steps.step_scale(self.point[name],
                                                        self.case.input_of(name))
        return self._scales[name]

    def element_scale(self, name: str) -> torch.Tensor:
        """Each element's step scale in the input's own shape (a complex element's: the
        larger of its parts')."""
        scale = self.scale(name)
        return scale.amax(-1) if self.case.point64[name].is_complex() else scale

    def partials(self, name: str, *, measured: bool = False) -> richardson.Estimate:
        """Every partial derivative of phi for input ``name`` (with ``measured``, its error
        bound counts the forward's measured rounding); discards a kinked point — after
        asking whether the forward's own rounding explains what looked like one."""
        key = (name, measured)
        if key not in self._partials:
            self._partials[key] = differences.partial_derivatives(
                self._sized_phi(measured), self.point, name, self.scale(name),
                self._magnitude(measured), centred=True, sized=True)
        estimate = self._partials[key]
        if not measured and not _trusted(estimate):
            return self.partials(name, measured=True)
        return _judgeable(estimate)

    def batches(self, name: str) -> bool:
        """Whether phi runs under vmap along input ``name``, as plain calls compute it (the
        partial derivatives of a large input are worth their cost only batched)."""
        if name not in self._batches:
            self._batches[name] = differences.batches(self._sized_phi(False), self.point,
                                                      name, self.magnitude)
        return self._batches[name]

    def direction(self, name: str) -> torch.Tensor:
        """A random direction, scaled like the input, with no component near zero (drawn
        once per input; the same for every check)."""
        if name not in self._directions:
            magnitudes, signs = uniform_magnitudes(
                self.point[name].shape, self.case.example.cotangent_seed + 1, 0.5, 1.5)
            weights = magnitudes.mul_(self.scale(name).cpu())  # |u|: the scale is positive
            self._weights[name] = weights
            self._directions[name] = torch.copysign(weights, signs, out=signs).to(
                self.case.device)
        return self._directions[name]

    def weights(self, name: str, direction: torch.Tensor) -> torch.Tensor:
        """|direction| in float64 on the CPU, as an allowance projects on it (a drawn
        direction's from its draw: a pass over it less)."""
        if self._drawn(name, direction):
            return self._weights[name]
        return direction.detach().abs().double().cpu()

    def _drawn(self, name: str, direction: torch.Tensor) -> bool:
        """Whether ``direction`` is the one drawn for ``name`` (whose |u| is kept and which
        moves every element: no component is zero)."""
        return direction is self._directions.get(name)

    def _absolute_sum(self, name: str) -> float:
        """sum |x| of input ``name`` in real coordinates (once per input: both directions
        and their measured reruns use it)."""
        if name not in self._absolute_sums:
            # One pass, and no |x| tensor (sum |x| only scales the step's rounding).
            self._absolute_sums[name] = float(torch.linalg.vector_norm(self.point[name], 1))
        return self._absolute_sums[name]

    def gradient_direction(self, name: str, gradient: torch.Tensor) -> torch.Tensor | None:
        """The gradient itself as a direction, scaled like the input; None if it is zero."""
        scale = self.scale(name)
        weighted = real_view(gradient.detach()).to(torch.float64) * scale
        if not weighted.numel():
            return None
        least, greatest = torch.aminmax(weighted)  # max |w| in one pass, with no |w| tensor
        largest = torch.maximum(-least, greatest)
        if not largest > 0 or not torch.isfinite(largest):
            return None
        return weighted.div_(largest).mul_(scale)  # the product is ours: no more copies

    def directional(
        self, name: str, direction: torch.Tensor, *, measured: bool = False,
        step: float | None = None,
    ) -> richardson.Estimate:
        """The derivative of phi along ``direction`` for input ``name``; ``step`` is
        sum |direction|, where the caller has it."""
        reach = differences.step_reach(
            {name: self.point[name]}, {name: direction}, step=step,
            absolute_sums={name: self._absolute_sum(name)}, dense=self._drawn(name, direction))
        estimate = differences.directional_derivative(
            self.phi, self.point, {name: direction}, self._magnitude(measured),
            centred=True, reach=reach)
        if not measured and not _trusted(estimate):
            return self.directional(name, direction, measured=True, step=step)
        return _judgeable(estimate)

    def directional_all(
        self, directions: dict[str, torch.Tensor], *, measured: bool = False
    ) -> richardson.Estimate:
        """The derivative of phi along several inputs at once (no discarding)."""
        directions = {name: real_view(d).to(torch.float64) for name, d in directions.items()}
        return differences.directional_derivative(
            self.phi, self.point, directions, self._magnitude(measured), centred=True)


def _as_complex(value: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(value.contiguous())


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The float64 (complex128) twin of a cotangent's dtype."""
    return torch.complex128 if dtype.is_complex else torch.float64


def _trusted(estimate: richardson.Estimate) -> bool:
    return estimate.finite and bool(estimate.smooth.all())


def _judgeable(estimate: richardson.Estimate) -> richardson.Estimate:
    if estimate.failure:
        raise Discarded(f"the forward raised within a finite-difference step: {estimate.failure}")
    if not estimate.finite:
        raise Discarded("the forward is not finite within a finite-difference step")
    if not bool(estimate.smooth.all()):
        raise Discarded("one-sided differences disagree: not differentiable here")
    return estimate
