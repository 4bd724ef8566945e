"""CHECKS: every check of ``harness.registry``, in its order, bound to the function that runs it.

A check is a function of a Case (one example made concrete) returning the
failures it found there; it raises ``Discarded`` for an example where the
gradient cannot be judged and ``Skipped`` when it cannot run for this spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.checks.batched import batched_check
from harness.checks.case import Case
from harness.checks.contract import undefined_check
from harness.checks.gradients import analytic, finite_difference, reference
from harness.checks.layouts import layouts_check
from harness.checks.taylor import taylor_check
from harness.checks.torch_checks import (
    devices_check,
    forward_mode_check,
    gradcheck_check,
    gradgradcheck_check,
)
from harness.errors import Discarded, Skipped
from harness.registry import REGISTRY, CheckInfo
from harness.report import Failure
from harness.spec import Spec

RUNS: dict[str, Callable[[Case], list[Failure]]] = {
    "analytic": analytic,
    "reference": reference,
    "finite_difference": finite_difference,
    "gradcheck": gradcheck_check,
    "gradgradcheck": gradgradcheck_check,
    "taylor": taylor_check,
    "forward_mode": forward_mode_check,
    "devices": devices_check,
    "layouts": layouts_check,
    "batched": batched_check,
    "undefined": undefined_check,
}


@dataclass(frozen=True)
class Check:
    """A registered check: its metadata (``harness.registry``) and the function that runs it."""

    info: CheckInfo
    run: Callable[[Case], list[Failure]]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def float64_only(self) -> bool:
        return self.info.float64_only

    def skip_reason(self, spec: Spec, device: str, dtype: str) -> str | None:
        """Why this check does not apply here, or None when it does."""
        return self.info.skip_reason(spec, device, dtype)


CHECKS: dict[str, Check] = {info.name: Check(info, RUNS[info.name]) for info in REGISTRY}

__all__ = ["CHECKS", "Check", "Discarded", "Skipped"]
