"""Allowances: how far apart two right answers may be, element by element, and why.

An ``Allowance`` is a sum of named terms, each a non-negative float64 tensor that
broadcasts to the compared values: the tolerance floor (a few units in the last
place, or what the spec declares), the rounding noise each side of a comparison
was measured to carry, the finite-difference oracle's own error bound. The
failure message prints the terms ("up to 3.1e-23 allowed: oracle 2.1e-23 +
autograd rounding 1e-23"), so every allowance can be traced to what justified it.

A non-finite or negative term is a harness bug, never a verdict: building one
raises ``AllowanceError``.

>>> import torch
>>> allowance = Allowance.of(tolerance=torch.tensor([1.0, 2.0]), oracle=0.5)
>>> allowance.total.tolist()
[1.5, 2.5]
>>> allowance.breakdown((1,))
'tolerance 2 + oracle 0.5'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from harness.errors import AllowanceError

# Each side of a comparison rounds its last operation by up to half a unit in the
# last place: a difference of up to one ulp is no evidence; twice that is the floor.
FLOOR_ULPS = 2.0
# The oracle's error estimate is the gap between its last two extrapolations, an
# estimate rather than a bound: the allowance takes three times it.
ORACLE_ERROR_FACTOR = 3.0
SHOWN_SHARE = 0.01  # a failure message names the terms above this share of the allowance


@dataclass(frozen=True)
class Allowance:
    """Named, non-negative per-element terms; their sum is what a difference may reach.

    ``of`` and ``plus`` check each term they are given (``AllowanceError``).
    """

    terms: tuple[tuple[str, torch.Tensor], ...] = ()

    @classmethod
    def of(cls, **terms: torch.Tensor | float) -> Allowance:
        """An allowance from keyword terms."""
        return cls().plus(**terms)

    def plus(self, **terms: torch.Tensor | float) -> Allowance:
        """This allowance with more terms; a term already present is added to."""
        merged = dict(self.terms)
        for name, value in terms.items():
            tensor = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
            _check_term(name, tensor)
            if name in merged:
                tensor = merged[name] + tensor
            merged[name] = tensor
        return Allowance(tuple(merged.items()))

    def scaled(self, factor: float) -> Allowance:
        """Every term times ``factor`` (a bound far beyond this allowance).

        >>> Allowance.of(tolerance=1.0, oracle=0.5).scaled(10).total.item()
        15.0
        """
        return Allowance(tuple((name, value * factor) for name, value in self))

    @property
    def total(self) -> torch.Tensor:
        """The allowed difference, element by element (a 0-d zero when there are no terms)."""
        total = torch.zeros((), dtype=torch.float64)
        for _, value in self.terms:
            total = total + value
        return total

    def projected(self, direction: torch.Tensor) -> Allowance:
        """The allowance of a sum sum_i x_i u_i (Re sum conj(x_i) u_i for complex ones): each
        term becomes sum_i term_i |u_i|, part by part.

        This is how a per-element allowance judges a directional derivative.
        """
        return self.projected_on(real_view(direction.detach()).abs().to(torch.float64).cpu())

    def projected_on(self, weights: torch.Tensor, total: torch.Tensor | None = None) -> Allowance:
        """``projected`` for a direction's |u| (``weights``, real coordinates, on the CPU)
        and its sum (``total``), where the caller has them.

        >>> allowance = Allowance.of(tolerance=torch.tensor([1.0, 2.0]), underflow=0.5)
        >>> allowance.projected_on(torch.tensor([3.0, 1.0], dtype=torch.float64)).total.item()
        7.0
        """
        flat = weights.reshape(-1)
        if total is None and any(v.dim() == 0 for _, v in self):
            total = weights.sum()

        def project(value: torch.Tensor) -> torch.Tensor:
            if value.dim() == 0:
                return value * total
            if value.shape == weights.shape:  # one pass, no product tensor
                return torch.dot(value.reshape(-1), flat)
            return (value * weights).sum()  # a term that broadcasts

        return Allowance(tuple((name, project(value)) for name, value in self))

    def breakdown(self, index: tuple[int, ...] = ()) -> str:
        """The terms at ``index``, large first: ``'tolerance 2 + oracle 0.5'`` (a lone term
        by its name alone, ``''`` for none; terms under SHOWN_SHARE of the total are
        left out, as the underflow term mostly is)."""
        values = [(name, _at(value, index)) for name, value in self]
        total = sum(value for _, value in values)
        values = sorted(((n, v) for n, v in values if v > SHOWN_SHARE * total),
                        key=lambda item: -item[1])
        if len(values) == 1:
            return values[0][0]
        return " + ".join(f"{name} {value:.2g}" for name, value in values)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.terms)

    def __contains__(self, name: str) -> bool:
        return any(term == name for term, _ in self.terms)


def real_view(value: torch.Tensor) -> torch.Tensor:
    """A complex tensor as its real view (a trailing dim of 2: real, imaginary part), so
    that every comparison, allowance and projection works part by part; a real tensor as
    it is. PyTorch's complex gradient is d/dRe + i d/dIm: its real view is the gradient of
    the real parts and the imaginary parts.

    >>> real_view(torch.tensor([1 + 2j])).tolist()
    [[1.0, 2.0]]
    """
    return torch.view_as_real(value.resolve_conj()) if value.is_complex() else value


def _check_term(name: str, value: torch.Tensor) -> None:
    if value.dim() == 0:  # most terms: a float, not three tensor operations
        least = greatest = float(value)
    else:  # one pass: NaN makes the least and the greatest NaN
        least, greatest = torch.aminmax(value) if value.numel() else (value.new_zeros(()),) * 2
    if not (bool(least >= 0) and bool(greatest < float("inf"))):  # NaN >= 0 is False
        raise AllowanceError(
            f"harness bug: the allowance term {name!r} is {_worst(value)} — "
            f"please report it with the spec and the Reproduce line"
        )


def _at(value: torch.Tensor, index: tuple[int, ...]) -> float:
    if value.dim() == 0:
        return float(value)
    return float(value[index])


def _worst(value: torch.Tensor) -> str:
    bad = value[~torch.isfinite(value) | (value < 0)]
    return repr(float(bad.reshape(-1)[0])) if bad.numel() else "invalid"


@dataclass(frozen=True)
class Tolerance:
    """The floor of every allowance in one item: ``rtol * |expected| + atol``.

    By default ``rtol`` is FLOOR_ULPS units in the last place of the dtype and
    ``atol`` is 0; a spec's ``tolerances`` for the dtype replace them (to accept an
    approximate gradient). Two terms join every allowance: ``underflow`` (below
    the smallest normal number a value has lost its relative precision, as a
    subnormal or flushed to zero: differences up to it are no evidence) and the
    spec's ``nondet_tol`` (nondeterministic kernels).

    >>> import torch
    >>> floor = Tolerance.of(torch.float64).floor(torch.tensor([1.0, -4.0]))
    >>> [name for name, _ in floor], floor.total.tolist()[1] == 8 * 2.0**-52
    (['tolerance', 'underflow'], True)
    """

    rtol: float
    atol: float
    underflow: float
    nondet_tol: float = 0.0

    @classmethod
    def of(
        cls, dtype: torch.dtype, declared: Mapping[str, float] | None = None,
        nondet_tol: float = 0.0,
    ) -> Tolerance:
        """The floor for ``dtype``; ``declared`` is the spec's ``{rtol, atol}`` for it."""
        info = torch.finfo(dtype)  # a complex dtype's: its parts'

        declared = declared or {}
        return cls(rtol=declared.get("rtol", FLOOR_ULPS * info.eps),
                   atol=declared.get("atol", 0.0), underflow=info.tiny,
                   nondet_tol=nondet_tol)

    def floor(self, expected: torch.Tensor) -> Allowance:
        """The floor's terms for values like ``expected`` (a complex one's real view: each
        part its own); an expected value that is not finite gets none (its difference is
        NaN or inf: a mismatch anyway)."""
        magnitude = real_view(expected.detach()).abs().to(torch.float64).cpu()
        if not bool(torch.isfinite(magnitude.sum())):  # a sum reads; nan_to_num_ writes
            magnitude = magnitude.nan_to_num_(nan=0.0, posinf=0.0)  # |x| is never -inf
        tolerance = magnitude.mul_(self.rtol)
        if self.atol:
            tolerance = tolerance.add_(self.atol)
        terms = [("tolerance", tolerance),
                 ("underflow", torch.tensor(self.underflow, dtype=torch.float64))]
        if self.nondet_tol:
            terms.append(("nondet_tol", torch.tensor(self.nondet_tol, dtype=torch.float64)))
        return Allowance(tuple(terms))
