"""Richardson's extrapolation of central differences, in float64: from phi's values at
the steps +-h, +-h/2, +-h/4 to a derivative estimate, its error bound, and whether the
point looked smooth — retrying with smaller steps where a value is not finite or a kink
lies between the steps. ``harness.numerics.differences`` says where phi is evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from harness.numerics.steps import FIRST_STEP

EPS64 = torch.finfo(torch.float64).eps
HALVINGS = 3  # steps h, h/2, h/4: two rounds of Richardson extrapolation
RETRIES = 3  # on a non-finite value or a kink between the steps, retry with smaller steps
RETRY_SHRINK = 16  # ... this much smaller each time
# Rounding of phi's evaluations: each of the two evaluations a central difference
# subtracts errs by a few ulps of the terms it sums; over the finest step, in
# units of eps: 2 evaluations x 4 ulps.
EVALUATION_ULPS = 8
# x + t d rounds, so the steps taken are t + e and -t + e' with |e|, |e'| up to
# eps |x| / |d|: a central difference errs by phi' (e - e') / 2t — the slope times
# the steps' relative rounding, felt where an element is large beside its change
# (tan at x = 6.24: 1e-12 of the slope) — and by phi'' (e + e') / 2, felt where the
# slope is exactly zero (mean((p - t)^2) at p = t). 4 ulps cover both roundings and
# Richardson's weights, with room.
STEP_ROUNDING_ULPS = 4
# The steps, relative to each element's scale, that tell which outputs an element
# moves at all (``partial_derivatives`` with ``sized``): an output that not even a step
# of the element's whole scale moves, bit for bit, depends on it by less than its own
# rounding over that step.
WHOLE_SCALE_STEP = 1.0
# A difference counts as signal only this far above the rounding noise.
ABOVE_NOISE = 100
# Richardson assumes an h^2 error, so the central differences shrink fourfold as
# h halves; shrinking by less than SLOW_SHRINK marks a function differentiable only
# once (x|x| at 0), where only the raw step is trusted.
SLOW_SHRINK = 3
# Where phi is smooth, (phi(x + h) - 2 phi(x) + phi(x - h)) / h halves with h; it
# halves at most this fast (with room) unless a step stopped crossing a kink.
KINK_FALL = 0.375
# One-sided slopes differ by O(h) where smooth: halving h twice at least halves it.
ONE_SIDED_SHRINK = 0.5

Array = torch.Tensor | np.ndarray  # the arithmetic's, in torch or in numpy


@dataclass(frozen=True)
class Estimate:
    """A derivative estimate, its error bound, and whether the point looked smooth."""

    value: torch.Tensor
    error: torch.Tensor
    smooth: torch.Tensor  # bool: one-sided differences agree (no kink between the steps)
    failure: str | None = None  # what the forward raised at a step, where it did

    @cached_property  # asked at each step of the way: by the retries, the trust, the verdict
    def finite(self) -> bool:
        if self.value.numel() == 1:  # a directional estimate: two floats, no tensor ops
            return math.isfinite(float(self.value)) and math.isfinite(float(self.error))
        return bool(torch.isfinite(self.value).all() and torch.isfinite(self.error).all())


def extrapolated(
    along: Callable[[list[float]], list[torch.Tensor]], centre: Callable[[], torch.Tensor],
    magnitude: float, reach: torch.Tensor | float, centred: bool,
    moved: Callable[[], torch.Tensor] | None = None,
) -> Estimate:
    """``along(ts)``: phi at each step t of ``ts`` (a batch of them at once, where the
    caller can); ``centre()``: phi at the point, never called when ``centred``; ``reach``:
    the moved elements' size over the step's, |x| / |d| (see ``STEP_ROUNDING_ULPS``);
    ``moved()``, where given, the size of the terms each estimate's steps moved, read
    after ``along`` (see ``differences.partial_derivatives``)."""
    step = FIRST_STEP
    for _ in range(RETRIES + 1):
        estimate, clear = _richardson(along, centre, step, magnitude, reach, centred, moved)
        if estimate.finite and bool(clear.all()):
            return estimate
        step /= RETRY_SHRINK
    return Estimate(estimate.value, estimate.error, estimate.smooth & clear)


def _richardson(
    along, centre_of, step: float, magnitude: float, reach: torch.Tensor | float,
    centred: bool, moved: Callable[[], torch.Tensor] | None = None,
) -> tuple[Estimate, torch.Tensor]:
    """The extrapolated estimate, and where no kink lies between the steps (see
    ``_kink_between_steps``)."""
    with torch.no_grad():
        steps = [step / 2**k for k in range(HALVINGS)]
        values = torch.stack(along([*steps, *(-h for h in steps)]))
        centre = None if centred else centre_of()
    sizes = None if moved is None else moved()
    if values.dim() > 1:  # partial derivatives: a row of n per step, on the device
        h = torch.tensor(steps, dtype=values.dtype, device=values.device)
        second, error, smooth, clear = _arithmetic(
            torch, values, centre, sizes, reach, steps, h.reshape(HALVINGS, 1), magnitude)
        return Estimate(second, error, smooth), clear
    # A directional estimate, six scalars: its forty-odd operations run on the host in
    # numpy, in a third of torch's time (whose dispatch outweighs the arithmetic), and
    # round alike (IEEE arithmetic, element by element; no reduction sums). For partial
    # derivatives numpy's conversions and its calls, cold between examples, would cost
    # more than they save.
    host = [None if v is None else _host(v) for v in (values, centre, sizes)]
    if isinstance(reach, torch.Tensor):
        reach = _host(reach)
    with np.errstate(all="ignore"):  # a step out of the domain is NaN, as in torch
        *estimate, clear = _arithmetic(np, *host, reach, steps, np.array(steps), magnitude)
    return (Estimate(*(torch.from_numpy(np.asarray(a)).to(values.device) for a in estimate)),
            torch.from_numpy(np.asarray(clear)))


def _arithmetic(
    xp, values: Array, centre: Array | None, moved: Array | None, reach: Array | float,
    steps: list[float], h: Array, magnitude: float,
) -> tuple[Array, Array, Array, Array]:
    """Richardson's extrapolation of phi's ``values`` (the steps ``steps``, then their
    negatives; ``h``: the steps, a row each), each quantity for every step at once (a row
    per step), with ``xp`` torch or numpy: (the estimate, its error bound, where the
    one-sided differences agree, where no kink lies between the steps)."""
    plus, minus = values[:HALVINGS], values[HALVINGS:]
    central = (plus - minus) / (2 * h)
    first = (4 * central[1:] - central[:-1]) / 3
    second = (16 * first[1] - first[0]) / 15
    largest = xp.amax(xp.abs(values), 0)
    if centre is not None:
        largest = xp.maximum(largest, xp.abs(centre))
    rounding = magnitude if moved is None else _moved_rounding(moved, magnitude, steps[-1])
    noise = EVALUATION_ULPS * EPS64 * (rounding + largest) / steps[-1]
    # |phi(x + h) - 2 phi(x) + phi(x - h)| / h: how far the one-sided slopes differ.
    jumps = xp.abs((plus + minus if centre is None else plus - 2 * centre + minus) / h)
    curvature = jumps[0] / steps[0]
    slope = xp.abs(central[-1])
    noise = noise + STEP_ROUNDING_ULPS * EPS64 * reach * (curvature + slope / steps[-1])
    error = xp.abs(second - first[1]) + noise
    # Where the differences shrink slower than h^2 (a function differentiable only
    # once, like x|x| at 0) only the raw step is trusted: its error is about the
    # last difference, doubled.
    coarse, fine = xp.abs(central[:-1] - central[1:])
    slow = (fine > ABOVE_NOISE * noise) & (coarse < SLOW_SHRINK * fine)
    error = xp.where(slow, error + 2 * fine, error)
    return second, error, _one_sided_agree(jumps, noise), ~_kink_between_steps(jumps, noise)


def _host(value: torch.Tensor) -> np.ndarray:
    return value.detach().cpu().numpy()


def _moved_rounding(moved: Array, magnitude: float, finest: float) -> Array:
    """The size of the terms whose rounding an estimate over the finest step carries: the
    moved ones in full, the others (unmoved by a step of the whole scale) as their
    rounding over that step, not the finest."""
    return moved + (magnitude - moved) * (finest / WHOLE_SCALE_STEP)


def _kink_between_steps(jumps: Array, noise: Array) -> Array:
    """A kink that the coarser steps cross and the finer do not (relu of a
    pre-activation 0.007 from 0, a step of 0.017): the finest one-sided
    differences agree, but Richardson mixes the crossed steps in.

    (phi(x + h) - 2 phi(x) + phi(x - h)) / h halves with h where phi is smooth,
    shrinks more slowly where it is differentiable once, and falls faster only
    as a step stops crossing a kink (or at an inflection point, which smaller
    steps settle). Where it does, the caller retries with smaller steps.
    """
    return (jumps[1:] + ABOVE_NOISE * noise < KINK_FALL * jumps[:-1]).any(0)


def _one_sided_agree(jumps: Array, noise: Array) -> Array:
    """One-sided slopes differ by O(h) where smooth and by a fixed jump at a kink."""
    shrinks = jumps[-1] <= ONE_SIDED_SHRINK * jumps[0]
    negligible = jumps[-1] <= ABOVE_NOISE * noise
    return shrinks | negligible
