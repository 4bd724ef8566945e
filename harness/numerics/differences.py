"""The finite-difference oracle: where phi is evaluated, in float64, for a derivative.

Everything here differentiates a scalar function ``phi(values) = <v, f(values)>``
(the spec's forward contracted with the cotangent), so a directional derivative
costs six forward evaluations whatever the input size, and the partial derivatives
of one input are a batch of directional derivatives along scaled unit vectors
(under ``torch.func.vmap`` where the forward allows). ``harness.numerics.richardson``
turns the evaluations into an estimate and its error bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import torch

from harness.numerics.richardson import EPS64, WHOLE_SCALE_STEP, Estimate, extrapolated

VMAP_CHUNK = 256
# The partial derivatives take the perturbations of several steps in one batch, up to
# this many elements (n^2 a step for n elements).
BATCHED_ELEMENTS = 2**22
PROBE_JOINS = 64  # inputs up to this size take the whole-scale steps with the others

Values = Mapping[str, torch.Tensor]
Scalar = Callable[[Values], torch.Tensor]


def directional_derivative(
    phi: Scalar, point: Values, direction: Values, magnitude: float = 0.0, *,
    centred: bool = False, reach: float | None = None,
) -> Estimate:
    """d/dt phi(point + t * direction) at t = 0.

    ``magnitude`` is the size of the terms summed into phi (``sum |v| |f|``): the
    scale of the rounding noise in its evaluations, which bounds the error.
    ``centred`` says that phi(point) is 0 by construction (``evaluate.contracted``
    with an offset), which saves its evaluation. ``reach``: ``step_reach`` of the
    direction, where the caller has what it takes (it saves passes over the input).

    >>> import torch
    >>> phi = lambda v: (v["x"] ** 3).sum()
    >>> x = torch.tensor([2.0], dtype=torch.float64)
    >>> estimate = directional_derivative(phi, {"x": x}, {"x": torch.ones_like(x)})
    >>> round(float(estimate.value), 9), bool(estimate.smooth)
    (12.0, True)
    """

    failures: list[str] = []
    device = next(iter(point.values())).device

    def at(t: float) -> torch.Tensor:
        moved = {name: torch.add(value, direction[name], alpha=t) if name in direction
                 else value for name, value in point.items()}
        return _or_nan(phi, moved, failures, (), device)

    def along(ts: list[float]) -> list[torch.Tensor]:
        return [at(t) for t in ts]

    reach = step_reach(point, direction) if reach is None else reach
    return _with_failure(extrapolated(along, lambda: at(0.0), magnitude, reach, centred),
                         failures)


def step_reach(
    point: Values, direction: Values, *, absolute_sums: Mapping[str, float] | None = None,
    dense: bool = False, step: float | None = None,
) -> float:
    """The size of the elements a direction moves over the size of its step: sum |x_i|
    over the moved elements over sum |d_i| (``step``, where the caller has it). The
    rounding of x + t d grows with it (see ``richardson.STEP_ROUNDING_ULPS``).
    ``absolute_sums``: sum |x| of each input, where the caller keeps it, which is the
    moved size wherever the direction moves every element — as ``dense`` says it does
    (otherwise its zeros are counted).

    >>> import torch
    >>> x = torch.tensor([3.0, -5.0], dtype=torch.float64)
    >>> step_reach({"x": x}, {"x": torch.tensor([0.5, 0.0], dtype=torch.float64)})
    6.0
    """
    sums = absolute_sums or {}
    moved = sum(_moved_size(point[name], d, sums.get(name), dense)
                for name, d in direction.items())
    if step is None:
        step = sum(float(d.abs().sum()) for d in direction.values())
    return moved / step if step > 0 else 0.0


def _moved_size(value: torch.Tensor, direction: torch.Tensor, absolute_sum: float | None,
                dense: bool) -> float:
    """sum |value| over the elements that ``direction`` moves (``absolute_sum``, where
    given, is sum |value| over all of them)."""
    if not dense and int(torch.count_nonzero(direction)) < direction.numel():
        return float(torch.where(direction != 0, value, 0).abs().sum())
    return float(value.abs().sum()) if absolute_sum is None else absolute_sum


def partial_derivatives(
    phi: Scalar, point: Values, name: str, scale: torch.Tensor, magnitude: float = 0.0, *,
    centred: bool = False, sized: bool = False,
) -> Estimate:
    """Every partial derivative of phi with respect to input ``name``, batched.

    The perturbations go through ``torch.func.vmap``; forwards that cannot be
    vmapped (custom Functions without a vmap rule, data-dependent Python) fall
    back to a loop over elements. ``centred`` as for ``directional_derivative``.

    With ``sized`` (and ``centred``) phi returns [phi, the size of the terms that
    moved] (``evaluate.contracted`` with sizes), and each element's error bound
    counts the rounding of the terms its own steps move, not all of ``magnitude``:
    the others are the same bit for bit at every step, so their rounding cancels.
    What is left of them is a dependence below their rounding: an output unmoved by
    a step of WHOLE_SCALE_STEP (the element's whole scale) depends on the element by
    less than its rounding over that step, and is counted over it, not over the
    finest step. One element of tanh at saturation, among 40 others, is judged by
    its own rounding, not theirs.
    """
    base = point[name]
    n = base.numel()
    if n == 0:  # an empty input: no partial derivative to take
        empty = base.detach().to(torch.float64)
        return Estimate(empty, empty, torch.ones_like(empty, dtype=torch.bool))
    flat_base, flat_scale = base.reshape(-1), scale.reshape(-1)
    failures: list[str] = []
    moved: list[torch.Tensor] = []  # with sized: per element, the largest size moved
    # With sized, the whole-scale steps (they only tell what moves) join the first batch
    # of a small input, where another vmap call would cost more than its arithmetic; a
    # larger one probes apart, so that a probe step out of the forward's domain cannot
    # send all of its steps to the loop.
    probe = [WHOLE_SCALE_STEP, -WHOLE_SCALE_STEP] if sized else []

    def along(ts: list[float]) -> list[torch.Tensor]:
        """phi at each step's n moved points (row i moves element i only: its diagonal
        entry), every step in one batch where it fits: one vmap call, not one a step (its
        fixed cost outweighs a small forward's arithmetic)."""
        extra = len(probe)
        ts = [*probe, *ts]
        probe.clear()
        per_batch = max(1, BATCHED_ELEMENTS // (n * n))
        values = []
        for start in range(0, len(ts), per_batch):
            chunk = ts[start:start + per_batch]
            rows = flat_base.repeat(len(chunk), n, 1)
            steps = torch.tensor(chunk, dtype=flat_base.dtype, device=flat_base.device)
            rows.diagonal(dim1=1, dim2=2).copy_(flat_base + steps[:, None] * flat_scale)
            batch = _phi_along_basis(phi, point, name, rows.reshape(len(chunk) * n, *base.shape),
                                     failures, magnitude, sized)
            if sized:
                _record_moved(moved, batch[:, 1].reshape(len(chunk), n), magnitude)
                batch = batch[:, 0]
            values += list(batch.reshape(len(chunk), n))
        return values[extra:]

    def centre() -> torch.Tensor:  # one forward, not n identical ones
        return phi(point).expand(n)

    assert centred or not sized, "a sized phi is centred: its value at the point is not taken"
    if sized and n > PROBE_JOINS:
        along([])  # the probe alone
        failures.clear()  # a step that size may leave the domain: it says only what moved
    reach = base.detach().abs().to(torch.float64).reshape(-1) / scale.reshape(-1)
    estimate = extrapolated(along, centre, magnitude, reach.to(base.device), centred,
                            moved=(lambda: moved[0]) if sized else None)
    return _with_failure(Estimate(
        (estimate.value / scale.reshape(-1)).reshape(base.shape),
        (estimate.error / scale.reshape(-1)).reshape(base.shape),
        estimate.smooth.reshape(base.shape),
    ), failures)


def batches(phi: Scalar, point: Values, name: str, magnitude: float = 0.0) -> bool:
    """Whether a sized phi (see ``partial_derivatives``) runs under ``torch.func.vmap``
    along input ``name`` and agrees with plain calls there (two rows at the point)."""
    def one(value: torch.Tensor) -> torch.Tensor:
        return phi({**point, name: value})

    rows = point[name].unsqueeze(0).repeat(2, *([1] * point[name].dim()))
    try:
        batch = torch.func.vmap(one)(rows)
    except Exception:  # vmap support is optional for user forwards
        return False
    return _agrees_with_plain_calls(one, rows, batch, magnitude, sized=True)


def _record_moved(moved: list[torch.Tensor], sizes: torch.Tensor, magnitude: float) -> None:
    """Keep, per element, the largest size of moved terms over its steps; a step where the
    forward failed (NaN) counts every term as moved."""
    sizes = torch.where(torch.isnan(sizes), magnitude, sizes).amax(dim=0).clamp(max=magnitude)
    moved[:] = [sizes if not moved else torch.maximum(moved[0], sizes)]


def _phi_along_basis(
    phi: Scalar, point: Values, name: str, moved: torch.Tensor, failures: list[str],
    magnitude: float = 0.0, sized: bool = False,
) -> torch.Tensor:
    def one(value: torch.Tensor) -> torch.Tensor:
        return phi({**point, name: value})

    try:
        batch = torch.func.vmap(one, chunk_size=VMAP_CHUNK)(moved)
    except Exception:  # vmap support is optional for user forwards; loop instead
        batch = None
    if batch is None or not _agrees_with_plain_calls(one, moved, batch, magnitude, sized):
        shape = (2,) if sized else ()
        return torch.stack([_or_nan(one, value, failures, shape, moved.device)
                            for value in moved])
    return batch


# A batched row may differ from its plain call by rounding (another kernel, another
# summation order): by this share of its size, or by this many ulps of the terms phi sums
# (``magnitude``, sum |v| |f|), whichever is larger.
VMAP_AGREEMENT = 1e-10
VMAP_AGREEMENT_ULPS = 64


def _agrees_with_plain_calls(
    one: Callable, moved: torch.Tensor, batch: torch.Tensor, magnitude: float = 0.0,
    sized: bool = False,
) -> bool:
    """The first and last rows of a vmapped batch against plain calls: vmap can be silently
    wrong (torch 2.13: index_fill with a batched 0-d value fills every row with the last
    value), and a wrong batch would make a right gradient look wrong. Of a sized phi the
    values are compared (the moved sizes may differ by what rounds to zero)."""
    for row in {0, len(moved) - 1}:
        try:
            plain = one(moved[row])
        except Exception:  # the loop will record it as a failure at this point
            return False
        batched = batch[row]
        if sized:
            plain, batched = plain[0], batched[0]
        finite = torch.isfinite(plain)
        if not torch.equal(finite, torch.isfinite(batched)):
            return False
        if not finite.all() and not torch.equal(plain[~finite].nan_to_num(nan=0.0),
                                                batched[~finite].nan_to_num(nan=0.0)):
            return False  # inf against -inf, or NaN against inf
        if not finite.any():
            continue
        size = float(plain[finite].abs().max())
        allowed = max(VMAP_AGREEMENT * size, VMAP_AGREEMENT_ULPS * EPS64 * magnitude, 1e-300)
        if float((batched[finite] - plain[finite]).abs().max()) > allowed:
            return False
    return True


def _or_nan(phi: Callable, values, failures: list[str], shape, device) -> torch.Tensor:
    """phi(values), or NaN where the forward raises there (a step out of its domain:
    cholesky of a matrix no longer positive definite); the error is kept for the reason."""
    try:
        return phi(values)
    except Exception as error:  # the spec's forward, at a point the spec never promised
        first_line = (str(error).splitlines() or [""])[0]
        failures.append(f"{type(error).__name__}: {first_line}")
        return torch.full(shape, float("nan"), dtype=torch.float64, device=device)


def _with_failure(estimate: Estimate, failures: list[str]) -> Estimate:
    """The estimate, carrying the first failure met where it is not finite for it."""
    if failures and not estimate.finite:
        return replace(estimate, failure=failures[0])
    return estimate
