"""Where the finite-difference oracle steps: each element's step scale.

A step of ``t`` moves element i by ``t * scale_i``; the coarsest step is ``FIRST_STEP``
of the scale, which keeps it clear of the kinks a spec declares and, for a ``unique``
input, of the element's nearest neighbour.
"""

from __future__ import annotations

import torch

from harness.spec import Input

FIRST_STEP = 1e-3  # coarsest step, relative to each element's scale


def step_scale(value: torch.Tensor, spec_input: Input) -> torch.Tensor:
    """Per-element step scale: the element's magnitude, floored, kept clear of kinks.

    The floor keeps a zero element from getting a zero step; the cap keeps the
    coarsest step within half the distance to the nearest declared kink.
    """
    magnitude = value.detach().abs().to(torch.float64)
    flat = magnitude.reshape(-1)
    rms = (float(torch.dot(flat, flat)) / flat.numel()) ** 0.5 if flat.numel() else 0.0
    bound = max(abs(spec_input.low), abs(spec_input.high))
    scale = magnitude.clamp_(min=max(1e-2 * rms, 1e-6 * bound, 1e-300))  # |x| is ours
    value = value.detach().to(torch.float64)
    for kink in spec_input.kinks:
        scale = torch.minimum(scale, _room((value - kink).abs()))
    if spec_input.unique and value.numel() > 1:
        scale = torch.minimum(scale, _room(nearest_neighbour_distance(value)))
    return scale


def _room(distance: torch.Tensor) -> torch.Tensor:
    """The largest scale whose coarsest step covers half the distance."""
    return (distance * 0.5 / FIRST_STEP).clamp(min=1e-300)


def nearest_neighbour_distance(value: torch.Tensor) -> torch.Tensor:
    flat = value.reshape(-1)
    ordered, order = flat.sort()
    gaps = ordered.diff()
    inf = gaps.new_full((1,), float("inf"))
    nearest = torch.minimum(torch.cat([inf, gaps]), torch.cat([gaps, inf]))
    return torch.empty_like(flat).scatter_(0, order, nearest).reshape(value.shape)
