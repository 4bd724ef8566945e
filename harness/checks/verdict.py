"""Triangulation: of three gradient sources, which one is the odd one out.

The caller compares the sources (each with its own allowance) and passes the
facts; these functions only name the verdict.
"""

from __future__ import annotations

FORMULA_WRONG = "the analytic formula is likely wrong"
BACKWARD_WRONG = "the backward implementation is likely wrong"
REFERENCE_WRONG = "the reference is likely wrong"
ORACLE_UNRELIABLE = (
    "finite differences are unreliable here (non-differentiable or ill-conditioned point)"
)
UNRESOLVED = ("finite differences cannot tell which is right: the difference is within "
              "their error here")
ALL_DISAGREE = "all three sources disagree: several are wrong, or the point is ill-conditioned"


def odd_one_out(
    subject_right: bool | None, autograd_right: bool | None,
    subject_wrong: str = FORMULA_WRONG,
) -> str:
    """The verdict when ``subject`` (a formula or a reference) and autograd disagree.

    ``subject_right`` and ``autograd_right`` say whether each agrees with finite
    differences (``None`` where the point could not be judged numerically).

    >>> odd_one_out(subject_right=False, autograd_right=True)
    'the analytic formula is likely wrong'
    """
    if subject_right is None or autograd_right is None:
        return ORACLE_UNRELIABLE
    if autograd_right and not subject_right:
        return subject_wrong
    if subject_right and not autograd_right:
        return BACKWARD_WRONG
    if subject_right and autograd_right:
        return UNRESOLVED
    return ALL_DISAGREE


def against_oracle(formula_right: bool | None, formula_agrees_with_autograd: bool | None) -> str:
    """The verdict when autograd and finite differences disagree; the formula's facts are
    ``None`` where the spec has no formula.

    >>> against_oracle(formula_right=None, formula_agrees_with_autograd=None)
    'the backward implementation is likely wrong'
    """
    if formula_right is None or formula_right:
        return BACKWARD_WRONG
    if formula_agrees_with_autograd:
        return ORACLE_UNRELIABLE
    return ALL_DISAGREE
