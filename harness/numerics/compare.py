"""Comparing two values element by element against an Allowance, as data for the message.

``compare`` returns ``None`` when every element of ``actual`` is within its allowance
of ``expected`` (complex values part by part, on their real views), else a
``Mismatch``: how many elements miss, the greatest absolute and relative
differences with their index and what was allowed there (term by term), and the
worst elements for the table. Shapes are compared first.
``judged`` pays for the costly terms of an allowance (measured rounding noise)
only when the cheap terms alone do not pass the comparison: an allowance only
grows as terms are added, so a pass on the cheap terms is a pass. It measures in
tiers, each only where the one before did not decide: the first simulated run
alone (a pass settles it), the first KEPT_RUNS samples of each kind (a difference
FAR_BEYOND times past what they allow fails on them), every sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from harness.numerics.allowance import Allowance, real_view
from harness.numerics.noise import KEPT_RUNS

WORST_SHOWN = 5
# A difference this many times past what the first KEPT_RUNS samples of each kind allow
# fails without the rest (the largest of them: ``NoiseModel.measure``). Over the spec
# library (benchmarks/noise_share.py, seeds 0 and 1, 20 examples: 2381 measures) the
# whole measure came out at most 17.4 times the largest of the first four per element,
# five others 6-9 times. A planted bug misses by thousands to billions; a failing
# example, as Hypothesis shrinks it, then pays a quarter of the whole measure.
FAR_BEYOND = 1000.0


@dataclass(frozen=True)
class Mismatch:
    """Where and by how much ``actual`` misses ``expected``, for the failure message."""

    mismatched: int
    total: int
    abs_diff: float = 0.0
    abs_index: tuple[int, ...] = ()
    abs_allowed: float = 0.0
    abs_terms: str = ""  # the allowance's terms at abs_index
    rel_diff: float = 0.0
    rel_index: tuple[int, ...] = ()
    rel_allowed: float = 0.0
    worst: tuple[tuple[int, ...], ...] = ()
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def allowed(self) -> str:
        """``'4e-05 allowed: tolerance 3e-05 + autograd rounding 1e-05'`` at abs_index."""
        return f"{self.abs_allowed:.2g} allowed" + (f": {self.abs_terms}" if self.abs_terms else "")

    def lines(self) -> list[str]:
        if self.shapes is not None:
            return [f"Shapes differ: {self.shapes[0]} and {self.shapes[1]}"]
        share = 100.0 * self.mismatched / max(self.total, 1)
        return [
            f"Mismatched elements: {self.mismatched} / {self.total} ({share:.1f}%)",
            f"Greatest absolute difference: {self.abs_diff:.6g} at index "
            f"{self.abs_index} (up to {self.allowed})",
            f"Greatest relative difference: {self.rel_diff:.6g} at index "
            f"{self.rel_index} (up to {self.rel_allowed:.2g} allowed)",
        ]


def compare(actual: torch.Tensor, expected: torch.Tensor, allowance: Allowance) -> Mismatch | None:
    """None when ``|actual - expected| <= allowance.total`` everywhere (NaN never is).

    >>> import torch
    >>> allowed = Allowance.of(tolerance=1e-7)
    >>> compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), allowed)
    >>> compare(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), allowed).lines()[:2]
    ['Mismatched elements: 1 / 2 (50.0%)', 'Greatest absolute difference: 0.5 at index (1,) (up to 1e-07 allowed: tolerance)']
    """  # noqa: E501
    if actual.shape != expected.shape:
        return Mismatch(1, 1, shapes=(tuple(actual.shape), tuple(expected.shape)))
    if actual.is_complex() or expected.is_complex():  # part by part, on the real views
        actual, expected = (real_view(v.detach().to(torch.complex128)) for v in (actual,
                                                                                 expected))
    actual = actual.detach().to(torch.float64).cpu()
    expected = expected.detach().to(torch.float64).cpu()
    allowed = allowance.total.expand_as(expected)
    difference = (actual - expected).abs()
    bad = ~(difference <= allowed)  # NaN differences count as mismatched
    if not bad.any():
        return None
    finite = difference.nan_to_num(nan=float("inf"))
    relative = (difference / expected.abs()).nan_to_num(nan=float("inf"))
    abs_at = _index(finite.argmax(), expected.shape)
    rel_at = _index(relative.argmax(), expected.shape)
    excess = torch.where(bad, finite / allowed.clamp(min=1e-300), torch.zeros_like(finite))
    worst = excess.reshape(-1).argsort(descending=True)[: min(WORST_SHOWN, int(bad.sum()))]
    return Mismatch(
        mismatched=int(bad.sum()),
        total=expected.numel(),
        abs_diff=float(difference[abs_at]),
        abs_index=abs_at,
        abs_allowed=float(allowed[abs_at]),
        abs_terms=allowance.breakdown(abs_at if allowance.total.dim() else ()),
        rel_diff=float(relative[rel_at]),
        rel_index=rel_at,
        rel_allowed=float(allowed[rel_at] / expected.abs()[rel_at]),
        worst=tuple(_index(i, expected.shape) for i in worst),
    )


def judged(
    actual: torch.Tensor,
    expected: torch.Tensor,
    cheap: Allowance,
    measured: Callable[[int | None], Mapping[str, torch.Tensor | float]] | None = None,
) -> Mismatch | None:
    """``compare`` against ``cheap``, and only where that fails against ``cheap`` plus the
    terms ``measured(runs)`` returns (the costly ones: rounding noise measured by reruns,
    ``runs`` of each kind, None for all), in tiers: ``measured(1)``, the first run alone,
    whose pass settles it (``NoiseModel.measure``: at the margin it grants more than
    every run would); ``measured(KEPT_RUNS)``, on which a difference FAR_BEYOND times
    past its allowance fails (the mismatch shown against that allowance); else
    ``measured(None)``, every sample.

    >>> import torch
    >>> asked = []
    >>> def measured(runs):
    ...     asked.append(runs)
    ...     return {"rounding": 1e-3 if runs == 1 else 1.0}
    >>> cheap = Allowance.of(tolerance=1e-9)
    >>> judged(torch.tensor([1.5]), torch.tensor([1.0]), cheap, measured) is None, asked
    (True, [1, 4, None])
    >>> judged(torch.tensor([5e3]), torch.tensor([1.0]), cheap, measured).mismatched, asked[3:]
    (1, [1, 4])
    """
    mismatch = compare(actual, expected, cheap)
    if mismatch is None or mismatch.shapes is not None or measured is None:
        return mismatch
    if compare(actual, expected, cheap.plus(**measured(1))) is None:
        return None
    kept = cheap.plus(**measured(KEPT_RUNS))
    if compare(actual, expected, kept.scaled(FAR_BEYOND)) is not None:
        return compare(actual, expected, kept)
    return compare(actual, expected, cheap.plus(**measured(None)))


def _index(flat: torch.Tensor | int, shape: torch.Size) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.as_tensor(flat), shape))
