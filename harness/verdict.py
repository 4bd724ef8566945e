"""Triangulation: of three gradient sources, which one is the odd one out."""

from __future__ import annotations

from collections.abc import Callable

import torch

FORMULA_WRONG = "the analytic formula is likely wrong"
BACKWARD_WRONG = "the backward implementation is likely wrong"
REFERENCE_WRONG = "the reference is likely wrong"
ORACLE_UNRELIABLE = (
    "finite differences are unreliable here (non-differentiable or ill-conditioned point)"
)
ALL_DISAGREE = "all three sources disagree: several are wrong, or the point is ill-conditioned"

Agrees = Callable[[torch.Tensor, torch.Tensor], bool]


def odd_one_out(
    subject: torch.Tensor,
    autograd: torch.Tensor,
    oracle: torch.Tensor | None,
    agrees: Agrees,
    subject_wrong: str = FORMULA_WRONG,
) -> str:
    """The verdict when ``subject`` (a formula or a reference) and autograd disagree.

    ``oracle`` is the finite-difference estimate (``None`` where the point could
    not be judged numerically); ``agrees(actual, expected)`` applies the tolerances.

    >>> import torch
    >>> same = lambda a, b: bool(torch.allclose(a, b))
    >>> odd_one_out(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(2.0), same)
    'the analytic formula is likely wrong'
    """
    if oracle is None:
        return ORACLE_UNRELIABLE
    subject_right = agrees(subject, oracle)
    autograd_right = agrees(autograd, oracle)
    if autograd_right and not subject_right:
        return subject_wrong
    if subject_right and not autograd_right:
        return BACKWARD_WRONG
    if subject_right and autograd_right:
        return ORACLE_UNRELIABLE
    return ALL_DISAGREE


def against_oracle(formula: torch.Tensor | None, autograd: torch.Tensor, oracle, agrees) -> str:
    """The verdict when autograd and finite differences disagree."""
    if formula is None:
        return BACKWARD_WRONG
    if agrees(formula, oracle):
        return BACKWARD_WRONG
    if agrees(formula, autograd):
        return ORACLE_UNRELIABLE
    return ALL_DISAGREE
