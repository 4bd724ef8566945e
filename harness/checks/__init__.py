"""The registry of checks, in CHECKS order: what each runs, when it applies, in which dtypes.

A check is a function of a Case (one example made concrete) returning the
failures it found there; it raises ``Discarded`` for an example where the
gradient cannot be judged and ``Skipped`` when it cannot run for this spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.checks.case import Case
from harness.checks.gradients import analytic, finite_difference, reference
from harness.checks.taylor import taylor_check
from harness.checks.torch_checks import (
    devices_check,
    forward_mode_check,
    gradcheck_check,
    gradgradcheck_check,
)
from harness.errors import Discarded, Skipped
from harness.registry import CHECK_DESCRIPTIONS, CHECK_NAMES
from harness.report import Failure
from harness.spec import Spec


@dataclass(frozen=True)
class Check:
    """A registered check: how it runs, when it applies, and in which dtypes."""

    name: str
    run: Callable[[Case], list[Failure]]
    description: str
    needs: Callable[[Spec], str | None] = lambda spec: None
    float64_only: bool = False
    low_precision: bool = False  # meaningful in float16/bfloat16

    def skip_reason(self, spec: Spec, device: str, dtype: str) -> str | None:
        """Why this check does not apply here, or None when it does."""
        if self.float64_only and dtype != "float64":
            return f"{self.name} runs in float64 only"
        if dtype in ("float16", "bfloat16") and not self.low_precision:
            return f"{self.name} is meaningless in {dtype}"
        return self.needs(spec)


def _needs_backward(spec: Spec) -> str | None:
    return None if spec.backward else "the spec has no backward formulas"


def _needs_reference(spec: Spec) -> str | None:
    return None if spec.reference is not None else "the spec has no reference"


def _needs_twice(spec: Spec) -> str | None:
    return None if spec.twice_differentiable else "the spec is not twice_differentiable"


def _check(name: str, run, needs=lambda spec: None, **options) -> Check:
    return Check(name, run, CHECK_DESCRIPTIONS[name], needs, **options)


CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        _check("analytic", analytic, _needs_backward, low_precision=True),
        _check("reference", reference, _needs_reference, low_precision=True),
        _check("finite_difference", finite_difference),
        _check("gradcheck", gradcheck_check, float64_only=True),
        _check("gradgradcheck", gradgradcheck_check, _needs_twice, float64_only=True),
        _check("taylor", taylor_check),
        _check("forward_mode", forward_mode_check),
        _check("devices", devices_check, low_precision=True),
    )
}
assert tuple(CHECKS) == CHECK_NAMES, "harness.registry.CHECK_NAMES must list CHECKS in order"

__all__ = ["CHECKS", "Check", "Discarded", "Skipped"]
