"""The Taylor test: a tolerance-free check that the gradient is the derivative.

Along a direction u, the remainder r(t) = |phi(x + t u) - phi(x) - t <g, u>|
shrinks like t^2 when g is the gradient and like t when it is not. The rate is
read off the smallest steps whose remainder stands clear of the rounding floor.

phi is evaluated in float64 at the item's (rounded) inputs whatever the dtype:
a float32 forward's rounding does not scale with its output (2a + b^2 with
2a close to -b^2 rounds like |2a| + b^2), so it is hard to bound, while the
float64 forward's can be measured. The gradient under test keeps its dtype, and
its allowance (what the other checks allow a right gradient) is the floor's
t-linear term.

The floor first counts only rounding at the scale of the terms phi sums. Where
that reads a wrong gradient, the test is judged again with the forward's and the
gradient's rounding measured (``Case.rounding``): a forward that rounds far
above its own size (log(cosh(d)) for d near 0 rounds cosh at 1e-16, then log
cancels it) leaves phi flat over small steps, and a flat phi has a remainder
t <g, u> that looks first-order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.checks.case import Case
from harness.checks.verdict import BACKWARD_WRONG
from harness.errors import Discarded, Fault
from harness.numerics.allowance import real_view
from harness.numerics.steps import nearest_neighbour_distance
from harness.report import Failure

EPS64 = torch.finfo(torch.float64).eps
RATIO = 4.0  # each step is this much smaller than the last
STEPS = 16
ABOVE_FLOOR = 100.0  # a remainder counts when this far above the rounding floor
MEASURABLE = 8.0  # ... and the next one when this far
SECOND_ORDER = 1.7
FIRST_ORDER = (0.7, 1.3)
RATES_JUDGED = 2  # the last rates, at the smallest clear steps, are the asymptotic ones
# Rounding of phi's evaluations: the remainder subtracts two sums over the output,
# each off by a few ulps of the terms it adds: 2 x 4 ulps.
EVALUATION_ULPS = 8
# The remainder holds t <e, u> for the gradient's rounding error e: bounded by the
# gradient's allowance projected on |u| (whose floor is two ulps: a comparison of two
# sides), with room: 4 x 2 ulps, the 8 ulps of one side's rounding the test always took.
GRADIENT_ROOM = 4.0
# Each of phi's two evaluations in a remainder carries the forward's measured noise.
EVALUATIONS = 2


@dataclass(frozen=True)
class _Walk:
    """The remainders along u, and the parts of their rounding floor."""

    steps: list[float]
    remainders: list[float]
    sizes: list[float]  # sum |v| |f(x + t u)|: the scale of each evaluation's rounding
    phi0: float
    size0: float

    def floors(self, phi_noise: float, per_step: float, underflow: float) -> list[float]:
        """The floor at each step: the rounding of phi's two evaluations (at the scale of
        the terms they sum, or as measured where that is larger — two estimates of the
        same rounding, so the larger stands), plus the gradient's allowance t-linearly."""
        return [max(EVALUATION_ULPS * EPS64 * (self.size0 + size), EVALUATIONS * phi_noise)
                + GRADIENT_ROOM * t * per_step + underflow
                for t, size in zip(self.steps, self.sizes)]


def taylor_check(case: Case) -> list[Failure]:
    return [f for name in case.leaves if (f := _taylor_one(case, name))]


def _taylor_one(case: Case, name: str) -> Failure | None:
    direction = case.oracle.direction(name).to(torch.float64)
    underflow = case.tolerance.underflow
    cheap = _gradient_allowance(case, name, direction, measured=False)
    walk = _walk(case, name, direction, cheap, underflow)
    floors = walk.floors(0.0, cheap, underflow)
    if not _first_order(_rates(walk.remainders, floors)):
        return None
    # The cheap floor reads a wrong gradient: judge again with the noise measured.
    floors = walk.floors(_phi_noise(case), _gradient_allowance(case, name, direction,
                                                               measured=True), underflow)
    if not _first_order(_rates(walk.remainders, floors)):
        return None
    _probe_kink(case, name, direction, walk, floors)
    case.discard_if_forward_differs()
    return case.failure(f"Gradient of {name!r} is wrong", BACKWARD_WRONG,
                        _evidence(walk, floors), name)


def _walk(case: Case, name: str, direction, per_step: float, underflow: float) -> _Walk:
    """phi along u at t = 1, 1/4, 1/16, ..., until two remainders fall below the floor;
    a step where the forward fails or is not finite (out of its domain: cholesky of a
    matrix no longer positive definite) is left out, and smaller steps are taken."""
    slope = float((real_view(case.autograd[name].detach()).double() * direction).sum())
    phi0, size0 = _contracted(case, case.output64)
    largest = _largest_step(case, name, direction)
    steps, remainders, sizes = [], [], []
    for k in range(STEPS):
        t = largest * RATIO**-k
        try:
            phi_t, size_t = _phi(case, _moved(case, name, t, direction))
        except Fault:
            continue
        if not (math.isfinite(phi_t) and math.isfinite(size_t)):
            continue
        steps.append(t)
        remainders.append(abs(phi_t - phi0 - t * slope))
        sizes.append(size_t)
        floors = _Walk(steps, remainders, sizes, phi0, size0).floors(0.0, per_step, underflow)
        if len(steps) > 3 and all(r < f for r, f in zip(remainders[-2:], floors[-2:])):
            break
    if len(steps) < 3:
        raise Discarded("the forward fails or is not finite along the Taylor direction")
    return _Walk(steps, remainders, sizes, phi0, size0)


def _gradient_allowance(case: Case, name: str, direction, *, measured: bool) -> float:
    """How far <g, u> of a right gradient may be off (it enters the remainder t-linearly,
    like a wrong gradient's would): the gradient's allowance in the other checks — the
    floor, and with ``measured`` its measured rounding — projected on |u|."""
    gradient = case.autograd[name]
    allowance = case.allowance(gradient)
    if measured:
        allowance = allowance.plus(**{"autograd rounding": case.rounding("autograd")[name]})
    return float(allowance.projected_on(case.oracle.weights(name, direction)).total)


def _phi_noise(case: Case) -> float:
    """The measured rounding noise of phi = <v, f> in float64 at the point."""
    noise = case.rounding("output", in_float64=True)
    return case.oracle.contracted_size(tuple(noise[key].to(case.device)
                                             for key in case.output_keys))


def _first_order(rates: list[float]) -> bool:
    """Rates steadily near 1 at the smallest clear steps: the remainder of a wrong gradient.

    Rates rising towards 2 mean the asymptotic regime is still ahead; no clear order
    (curvature changing over the steps, a floor close by) is no evidence either way.
    """
    if not rates or rates[-1] >= SECOND_ORDER:
        return False
    steady = all(FIRST_ORDER[0] <= rate <= FIRST_ORDER[1] for rate in rates)
    return len(rates) >= 2 and steady and rates[-1] <= rates[-2] + 0.1


def _largest_step(case: Case, name: str, direction: torch.Tensor) -> float:
    """1, or less where a step that large would cross a declared kink or a tie."""
    spec_input = case.input_of(name)
    value = case.oracle.point[name]
    reach = direction.abs().to(torch.float64)
    if not reach.numel() or not reach.max() > 0:
        return 1.0
    room = [(value - kink).abs() / reach for kink in spec_input.kinks]
    if spec_input.unique and value.numel() > 1:
        room.append(nearest_neighbour_distance(value) / (2 * reach.max()))
    if not room:
        return 1.0
    return min(1.0, 0.5 * float(torch.stack(room).min()))


def _probe_kink(case: Case, name: str, direction, walk: _Walk, floors: list[float]) -> None:
    """A kink on the way looks first-order too; its even part gives it away.

    phi(x + tu) + phi(x - tu) - 2 phi(x) is O(t^2) where phi is smooth, whatever
    the gradient, and O(t) across a kink.
    """
    clear = [k for k, (r, f) in enumerate(zip(walk.remainders, floors)) if r > ABOVE_FLOOR * f]
    t = walk.steps[clear[-1]]
    try:
        forwards = _phi(case, _moved(case, name, t, direction))[0]
        backwards = _phi(case, _moved(case, name, -t, direction))[0]
    except Fault:
        raise Discarded("the forward fails on the far side of the Taylor direction") from None
    if not (math.isfinite(forwards) and math.isfinite(backwards)):
        raise Discarded("the forward fails on the far side of the Taylor direction")
    even = abs(forwards + backwards - 2 * walk.phi0)
    if not even <= 0.25 * walk.remainders[clear[-1]]:
        raise Discarded("the function has a kink along the Taylor direction here")


def _moved(case: Case, name: str, t: float, direction: torch.Tensor) -> dict[str, torch.Tensor]:
    """The point moved by ``t`` times ``direction`` (in real coordinates) along input
    ``name``, in one pass."""
    step = case.oracle.as_input(name, direction)
    return {**case.point64, name: torch.add(case.point64[name], step, alpha=t)}


def _phi(case: Case, values) -> tuple[float, float]:
    """phi in float64 at ``values`` and the size of the terms it sums (its rounding scale).
    Not finite where an output element is not (the size sums |v| |f| over every element,
    and 0 x inf is NaN): the walk tests that, so the outputs are not tested apart."""
    outputs = case.output_at(values, torch.float64, finite=False)
    return _contracted(case, tuple(outputs[key] for key in case.output_keys))


def _contracted(case: Case, outputs) -> tuple[float, float]:
    """(sum_k Re <v_k, f_k>, sum_k |v_k| . |f_k|) in float64."""
    value = sum(float(_inner(v, o)) for v, o in zip(case.oracle.cotangents64, outputs))
    return value, case.oracle.contracted_size(outputs)


def _inner(v: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Re sum conj(v) f: the real inner product that phi takes."""
    if not v.is_complex():  # one pass, no temporary the size of the output
        return torch.dot(v.reshape(-1), output.double().reshape(-1))
    return (v.conj() * output.to(v.dtype)).sum().real


def _rates(remainders: list[float], floors: list[float]) -> list[float]:
    """Orders of convergence from each clear remainder to the next, smallest steps last.

    The next remainder need not be clear of the floor: where a large step saw
    higher-order terms (a saturated function), the next one falls straight into
    the floor — a fall that bounds the order from below by log4(100 / 8) > 1.8 —
    while a wrong gradient's t-linear remainder keeps falling fourfold.
    """
    rates = []
    pairs = zip(remainders, remainders[1:], floors, floors[1:])
    for before, after, floor_before, floor_after in pairs:
        if before > ABOVE_FLOOR * floor_before and math.isfinite(before) and math.isfinite(after):
            # A fall into the floor bounds the order from below; it is not noise.
            rates.append(math.log(before / max(after, MEASURABLE * floor_after), RATIO))
    return rates[-RATES_JUDGED:]


def _evidence(walk: _Walk, floors: list[float]) -> list[str]:
    lines = ["Taylor remainder |phi(x + t u) - phi(x) - t <g, u>| does not shrink like t^2:",
             "   t            remainder       rounding floor  order"]
    for k, (t, r, floor) in enumerate(zip(walk.steps, walk.remainders, floors)):
        order = ""
        if k and r > 0 and walk.remainders[k - 1] > 0:
            order = f"{math.log(walk.remainders[k - 1] / r, walk.steps[k - 1] / t):.2f}"
        lines.append(f"   {t:<12.4g} {r:<15.6g} {floor:<15.2g} {order}".rstrip())
    lines.append("   (order 2 means the gradient is right, order 1 that it is not)")
    return lines
