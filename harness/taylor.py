"""The Taylor test: a tolerance-free check that the gradient is the derivative.

Along a direction u, the remainder r(t) = |phi(x + t u) - phi(x) - t <g, u>|
shrinks like t^2 when g is the gradient and like t when it is not. The rate is
read off the smallest steps whose remainder stands clear of the rounding floor.

phi is evaluated in float64 at the item's (rounded) inputs whatever the dtype:
a float32 forward's rounding does not scale with its output (2a + b^2 with
2a close to -b^2 rounds like |2a| + b^2), so it is hard to bound, while the
float64 forward's is negligible. The gradient under test keeps its dtype, and
its rounding is the floor's t-linear term.
"""

from __future__ import annotations

import math

import torch

from harness.context import Context, Discarded
from harness.numeric import nearest_neighbour_distance
from harness.report import Failure
from harness.verdict import BACKWARD_WRONG

EPS64 = torch.finfo(torch.float64).eps
RATIO = 4.0  # each step is this much smaller than the last
STEPS = 16
ABOVE_FLOOR = 100.0  # a remainder counts when this far above the rounding floor
MEASURABLE = 8.0  # ... and the next one when this far
SECOND_ORDER = 1.7
FIRST_ORDER = (0.7, 1.3)
RATES_JUDGED = 2  # the last rates, at the smallest clear steps, are the asymptotic ones


def taylor_check(ctx: Context) -> list[Failure]:
    return [f for name in ctx.spec.differentiable if (f := _taylor_one(ctx, name))]


def _taylor_one(ctx: Context, name: str) -> Failure | None:
    direction = ctx.direction(name).to(torch.float64)
    gradient_terms = ctx.autograd[name].detach().double() * direction
    slope = float(gradient_terms.sum())
    phi0, size0 = _contracted(ctx, ctx.output64)
    per_step = _gradient_rounding(ctx, name, direction, gradient_terms)
    largest = _largest_step(ctx, name, direction)
    steps, remainders, floors = [], [], []
    for k in range(STEPS):
        t = largest * RATIO**-k
        phi_t, size_t = _phi(ctx, _moved(ctx, name, t * direction))
        steps.append(t)
        remainders.append(abs(phi_t - phi0 - t * slope))
        floors.append(8 * EPS64 * (size0 + size_t) + 8 * t * per_step + ctx.floor)
        if k > 2 and all(r < f for r, f in zip(remainders[-2:], floors[-2:])):
            break
    rates = _rates(remainders, floors)
    if not rates or rates[-1] >= SECOND_ORDER:
        return None
    first_order = all(FIRST_ORDER[0] <= rate <= FIRST_ORDER[1] for rate in rates)
    # Rates rising towards 2 mean the asymptotic regime is still ahead: no verdict.
    if len(rates) >= 2 and first_order and rates[-1] <= rates[-2] + 0.1:
        _probe_kink(ctx, name, direction, steps, remainders, floors, phi0)
        return ctx.failure(
            f"Gradient of {name!r} is wrong",
            BACKWARD_WRONG,
            _evidence(steps, remainders, floors),
            name,
        )
    # No clear order (curvature changing over the steps, a float32 floor close by):
    # no evidence either way, and not the spec's fault, so not counted as a discard.
    return None


def _gradient_rounding(ctx: Context, name: str, direction, gradient_terms) -> float:
    """How far <g, u> of a right gradient may be off: its error enters the remainder
    t-linearly, like a wrong gradient's would.

    In float64, rounding only. In lower precision, what the other checks allow a right
    gradient (assert_close's rtol and absolute atol, and the sensitivity): a float32
    sigmoid'(15) = s (1 - s) is a few percent off, since s rounds to within 6e-8 of 1.
    """
    direction = direction.abs().cpu()
    rounding = float((ctx.sensitivity[name] * direction).sum())
    if ctx.dtype == torch.float64:
        return rounding + EPS64 * float(gradient_terms.abs().sum())
    allowed = ctx.rtol * gradient_terms.abs().cpu() + ctx.atol * direction
    return rounding + float(allowed.sum())


def _largest_step(ctx: Context, name: str, direction: torch.Tensor) -> float:
    """1, or less where a step that large would cross a declared kink or a tie."""
    spec_input = ctx.spec.inputs[name]
    value = ctx.point64[name]
    reach = direction.abs().to(torch.float64)
    if not reach.numel() or not reach.max() > 0:
        return 1.0
    room = [(value - kink).abs() / reach for kink in spec_input.kinks]
    if spec_input.unique and value.numel() > 1:
        room.append(nearest_neighbour_distance(value) / (2 * reach.max()))
    if not room:
        return 1.0
    return min(1.0, 0.5 * float(torch.stack(room).min()))


def _probe_kink(ctx, name, direction, steps, remainders, floors, phi0) -> None:
    """A kink on the way looks first-order too; its even part gives it away.

    phi(x + tu) + phi(x - tu) - 2 phi(x) is O(t^2) where phi is smooth, whatever
    the gradient, and O(t) across a kink.
    """
    clear = [k for k, (r, f) in enumerate(zip(remainders, floors)) if r > ABOVE_FLOOR * f]
    t = steps[clear[-1]]
    forwards, backwards = _moved(ctx, name, t * direction), _moved(ctx, name, -t * direction)
    even = abs(_phi(ctx, forwards)[0] + _phi(ctx, backwards)[0] - 2 * phi0)
    if even > 0.25 * remainders[clear[-1]]:
        raise Discarded("the function has a kink along the Taylor direction here")


def _moved(ctx: Context, name: str, step: torch.Tensor) -> dict[str, torch.Tensor]:
    return {**ctx.point64, name: ctx.point64[name] + step}


def _phi(ctx: Context, values) -> tuple[float, float]:
    """phi in float64 at ``values`` and the size of the terms it sums (its rounding scale)."""
    with torch.no_grad():
        return _contracted(ctx, ctx.spec.forward({**values, **ctx.dims}))


def _contracted(ctx: Context, output: torch.Tensor) -> tuple[float, float]:
    terms = ctx.cotangent.double() * output.double()
    return float(terms.sum()), float(terms.abs().sum())


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


def _evidence(steps: list[float], remainders: list[float], floors: list[float]) -> list[str]:
    lines = ["Taylor remainder |phi(x + t u) - phi(x) - t <g, u>| does not shrink like t^2:",
             "   t            remainder       rounding floor  order"]
    for k, (t, r, floor) in enumerate(zip(steps, remainders, floors)):
        order = ""
        if k and r > 0 and remainders[k - 1] > 0:
            order = f"{math.log(remainders[k - 1] / r, RATIO):.2f}"
        lines.append(f"   {t:<12.4g} {r:<15.6g} {floor:<15.2g} {order}".rstrip())
    lines.append("   (order 2 means the gradient is right, order 1 that it is not)")
    return lines
