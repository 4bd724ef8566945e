"""Comparing two gradients with tolerances from the dtype and the magnitudes involved.

The allowance for each element is ``atol * scale + rtol * |expected| + slack``:
``rtol``/``atol`` are torch.testing.assert_close's defaults for the dtype (or the
spec's override), ``scale`` is the largest expected magnitude (so elements that
come out small by cancellation are judged at the tensor's scale; at least 1 below
float64), and ``slack``
carries what the caller knows of the noise: a finite-difference error bound and
how far the gradient moves when the inputs move by one rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.testing._comparison import default_tolerances

from harness.spec import Spec

SENSITIVITY_FACTOR = 10.0  # rounding errors of a few ulps, each amplified like an input's


@dataclass(frozen=True)
class Mismatch:
    """Where and by how much ``actual`` misses ``expected``, for the failure message."""

    mismatched: int
    total: int
    abs_diff: float
    abs_index: tuple[int, ...]
    abs_allowed: float
    rel_diff: float
    rel_index: tuple[int, ...]
    rel_allowed: float
    worst: tuple[tuple[int, ...], ...]

    def lines(self) -> list[str]:
        share = 100.0 * self.mismatched / max(self.total, 1)
        return [
            f"Mismatched elements: {self.mismatched} / {self.total} ({share:.1f}%)",
            f"Greatest absolute difference: {self.abs_diff:.6g} at index "
            f"{self.abs_index} (up to {self.abs_allowed:.2g} allowed)",
            f"Greatest relative difference: {self.rel_diff:.6g} at index "
            f"{self.rel_index} (up to {self.rel_allowed:.2g} allowed)",
        ]


def tolerances(spec: Spec, dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol): the spec's override for the dtype, else assert_close's defaults."""
    rtol, atol = default_tolerances(dtype)
    override = spec.tolerances.get(str(dtype).removeprefix("torch."), {})
    return override.get("rtol", rtol), override.get("atol", atol)


def compare(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    rtol: float,
    atol: float,
    slack: torch.Tensor | float = 0.0,
    absolute: bool = False,
) -> Mismatch | None:
    """None when every element of ``actual`` is within its allowance of ``expected``.

    ``absolute`` keeps ``atol`` absolute for gradients smaller than 1, as
    assert_close does: right for low precision, where a small gradient is often
    the difference of terms of order one (``s * (1 - s)`` for a saturated ``s``).
    In float64 ``atol`` is relative to the gradient's scale, whatever it is.

    >>> import torch
    >>> compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), rtol=1e-7, atol=1e-7)
    >>> compare(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), rtol=1e-7, atol=1e-7).lines()[0]
    'Mismatched elements: 1 / 2 (50.0%)'
    """
    actual = actual.detach().to(torch.float64).cpu()
    expected = expected.detach().to(torch.float64).cpu()
    slack = torch.as_tensor(slack, dtype=torch.float64).cpu()
    scale = expected.abs().max() if expected.numel() else expected.new_zeros(())
    if absolute:
        scale = scale.clamp(min=1.0)
    allowed = atol * scale + rtol * expected.abs() + slack
    difference = (actual - expected).abs()
    bad = ~(difference <= allowed)  # NaN differences count as mismatched
    if not bad.any():
        return None
    relative = difference / expected.abs()
    excess = torch.where(bad, difference / allowed.clamp(min=1e-300), torch.zeros_like(difference))
    return Mismatch(
        mismatched=int(bad.sum()),
        total=expected.numel(),
        abs_diff=float(difference.max()),
        abs_index=_index(difference.argmax(), expected.shape),
        abs_allowed=float(allowed.reshape(-1)[difference.argmax()]),
        rel_diff=float(relative.nan_to_num(nan=0.0, posinf=float("inf")).max()),
        rel_index=_index(relative.nan_to_num(nan=0.0).argmax(), expected.shape),
        rel_allowed=float(
            (allowed / expected.abs()).reshape(-1)[relative.nan_to_num(nan=0.0).argmax()]
        ),
        worst=tuple(_index(i, expected.shape) for i in excess.reshape(-1).argsort(
            descending=True)[: min(5, int(bad.sum()))]),
    )


def _index(flat: torch.Tensor | int, shape: torch.Size) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.as_tensor(flat), shape))
