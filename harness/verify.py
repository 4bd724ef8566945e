"""verify(spec): run checks over explicit examples, then over examples Hypothesis draws."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, given, settings

from harness._compat import no_tf32, set_database_key
from harness.checks import CHECKS, Check
from harness.checks.case import Case
from harness.checks.evaluate import time_limit
from harness.checks.outputs import through_outputs
from harness.errors import (
    AllowanceError,
    Discarded,
    FailureFound,
    Fault,
    Skipped,
    SpecError,
    did_you_mean,
)
from harness.registry import CHECK_INFO, DTYPE_NAMES, chosen_checks
from harness.report import Failure, Report
from harness.spec import Spec
from harness.spec.examples import Example
from harness.strategies import examples

DISCARD_LIMIT = 0.5  # a check whose examples are mostly discarded fails with advice
DISCARD_MINIMUM = 5
SHRINK_SECONDS = 20.0
EXAMPLE_TIMEOUT = 60.0


def verify(
    spec: Spec,
    *,
    checks: Sequence[str] | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = EXAMPLE_TIMEOUT,
    settings: hypothesis.settings | None = None,
    on_shrink: Callable[[float], None] | None = None,
) -> Report:
    """Check ``spec``'s gradients; never raises for a wrong gradient.

    Runs every check that applies (or those named) on the spec's explicit
    examples, then on examples drawn by Hypothesis, which shrinks a failure to a
    minimal one; ``max_examples=0`` runs the explicit examples only. ``seed``
    fixes the draw; the report's messages say how to rerun.
    ``timeout`` bounds the seconds one example may take (a forward that never
    finishes becomes a failure); None lifts the bound. ``settings`` are the
    Hypothesis settings the draw starts from (default: the loaded profile's, as
    for any ``@given`` test); the pytest plugin passes its ``harness-dev`` or
    ``harness-ci`` profile. ``on_shrink`` is called with the seconds since the
    first failure each time Hypothesis tries a smaller example.

    >>> import torch
    >>> from harness import Input, Spec
    >>> square = Spec(forward=lambda x: x**2, inputs={"x": Input(["n"])},
    ...               backward={"x": lambda grad, x: grad * 2 * x}, name="square")
    >>> verify(square, checks=["analytic"], max_examples=10, seed=0).passed
    True
    >>> wrong = Spec(forward=lambda x: x**2, inputs={"x": Input(["n"])},
    ...              backward={"x": lambda grad, x: grad * x}, name="wrong")
    >>> report = verify(wrong, checks=["analytic"], max_examples=10, seed=0)
    >>> print(str(report).splitlines()[0])
    Gradient of 'x' is wrong in spec 'wrong' [analytic, cpu, float64]: the analytic formula is likely wrong
    """  # noqa: E501
    if not isinstance(spec, Spec):
        raise SpecError(f"spec={spec!r} is not a Spec — build one with Spec(...)")
    dtype_name = str(dtype).removeprefix("torch.")
    if dtype_name not in DTYPE_NAMES:
        raise SpecError(f"dtype={dtype!r} is not one of {', '.join(DTYPE_NAMES)}")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 0):
        raise SpecError(f"max_examples={max_examples!r} must be an integer >= 0 (0 runs the "
                        f"spec's explicit examples only)")
    report = Report()
    for check in _selected(spec, checks):
        reason = check.skip_reason(spec, device, dtype_name) or _device_reason(device)
        if reason:
            report.skipped[check.name] = reason
            continue
        run = _CheckRun(spec, check, device, dtype, timeout, base=settings, on_shrink=on_shrink)
        run.all_examples(max_examples, seed)
        report.failures += run.failures
        report.examples += run.counts["examples"]
        report.discarded += run.counts["discarded"]
        for why, n in run.reasons.items():
            report.discard_reasons[why] = report.discard_reasons.get(why, 0) + n
        if run.skipped:
            report.skipped[check.name] = run.skipped
    return report


def applicable_checks(spec: Spec) -> list[str]:
    """The checks that apply to ``spec`` in some dtype and device."""
    return [name for name in chosen_checks(spec) if CHECK_INFO[name].needs_reason(spec) is None]


def _selected(spec: Spec, checks: Sequence[str] | None) -> list[Check]:
    names = list(checks) if checks is not None else list(chosen_checks(spec))
    for name in names:
        if name not in CHECKS:
            raise SpecError(
                f"checks names {name!r}, which is not a check{did_you_mean(name, CHECKS)} — "
                f"the checks are {', '.join(CHECKS)}"
            )
    return [CHECKS[name] for name in names]


def _device_reason(device: str) -> str | None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "CUDA not available"
    return None


@dataclass
class _CheckRun:
    spec: Spec
    check: Check
    device: str
    dtype: torch.dtype
    timeout: float | None = EXAMPLE_TIMEOUT
    base: settings | None = None  # the Hypothesis settings to start from; None: the loaded
    on_shrink: Callable[[float], None] | None = None
    failures: list[Failure] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    skipped: str | None = None

    def all_examples(self, max_examples: int | None, seed: int | None) -> None:
        for example in self.spec.examples:
            self.failures = self.attempt(example)
            if self.failures or self.skipped:
                return
        if max_examples != 0:
            self.failures = self.drawn(max_examples, seed)
        if not self.failures and not self.skipped:
            self.failures = self.mostly_discarded()

    def attempt(self, example: Example) -> list[Failure]:
        if self.skipped:
            return []
        self.counts["examples"] += 1
        try:
            with _precise(self.device), time_limit(self.timeout):
                failures = self._judged(example)
        except Discarded as discarded:
            self.counts["discarded"] += 1
            self.reasons[str(discarded)] += 1
            return []
        except Skipped as skipped:
            self.skipped = str(skipped)
            return []
        except Fault as fault:
            failures = [self._fault(example, fault)]
        except AllowanceError as error:  # a harness bug, reported as one: never a verdict
            failures = [self._fault(example, error, "The harness could not judge the example")]
        return [replace(failure, check=self.check.name) for failure in failures]

    def _judged(self, example: Example) -> list[Failure]:
        case = Case(self.spec, example, self.device, self.dtype)
        try:
            failures = self.check.run(case)
        except Discarded:
            _require_deterministic(case)
            raise
        _require_deterministic(case)
        return through_outputs(self.check.run, case, failures)

    def drawn(self, max_examples: int | None, seed: int | None) -> list[Failure]:
        budget = _ShrinkBudget()

        def prop(example: Example) -> None:
            if self.on_shrink is not None and budget.first_failure is not None:
                self.on_shrink(budget.elapsed)
            if budget.spent and not budget.is_best(example):
                return  # past the budget, nothing new fails: the shrinker stops here
            failures = self.attempt(example)
            if failures:
                budget.failed(example)
                raise FailureFound(failures)

        # The explain phase costs seconds per failure and its output is never shown.
        base = self.base if self.base is not None else settings.default
        phases = tuple(phase for phase in base.phases if phase != Phase.explain)
        options = {"deadline": None, "suppress_health_check": list(HealthCheck),
                   "phases": phases}
        if max_examples is not None:
            options["max_examples"] = max_examples
        elif self.check.info.max_examples is not None:  # a few decide (registry.py)
            options["max_examples"] = min(base.max_examples, self.check.info.max_examples)
        test = settings(base, **options)(given(examples(self.spec, self.dtype))(prop))
        # One database entry per spec, check, device and dtype (not one per `prop`).
        set_database_key(test, self._key())
        if seed is None and not base.derandomize:
            seed = random.getrandbits(32)
        if seed is not None:
            test = hypothesis.seed(seed)(test)
        try:
            test()
        except FailureFound as found:
            return [f.with_reproduce(self._reproduce(seed)) for f in found.failures]
        except BaseExceptionGroup as group:  # Hypothesis reports flaky failures in a group
            found = group.subgroup(FailureFound)
            if found is None:
                raise
            return _first_found(found).failures
        return []

    def mostly_discarded(self) -> list[Failure]:
        discarded, total = self.counts["discarded"], self.counts["examples"]
        if discarded < DISCARD_MINIMUM or discarded <= DISCARD_LIMIT * total:
            return []
        reasons = [f"   {n} x {reason}" for reason, n in self.reasons.most_common()]
        return [Failure(
            spec=self.spec.name or "?", check=self.check.name, device=self.device,
            dtype=str(self.dtype).removeprefix("torch."),
            summary="Most examples could not be judged",
            verdict=f"{discarded} of {total} were discarded — declare kinks or unique, "
                    f"or narrow low/high, so that examples land where the function is smooth",
            details=("Why examples were discarded:", *reasons),
            location=self.spec.location,
        )]

    def _fault(self, example: Example, fault: Exception,
               summary: str = "The spec's code failed") -> Failure:
        return Failure(
            spec=self.spec.name or "?", check=self.check.name, device=self.device,
            dtype=str(self.dtype).removeprefix("torch."),
            summary=summary, verdict=str(fault),
            example=example.describe(), explicit=example.index, location=self.spec.location,
        )

    def _key(self) -> bytes:
        return f"{self.spec.location}::{self.spec.name}::{self.check.name}" \
               f"[{self.device}-{self.dtype}]".encode()

    def _reproduce(self, seed: int | None) -> str:
        dtype = str(self.dtype)
        where = f"seed={seed}" if seed is not None else "derandomized"
        return (f"verify(spec, checks=[{self.check.name!r}], device={self.device!r}, "
                f"dtype={dtype}, seed={seed})" if seed is not None else f"verify(...) [{where}]")


def _require_deterministic(case: Case) -> None:
    """A forward that draws random numbers gives the oracle noise, which its error bound
    then excuses (or calls a kink): one more forward finds it out."""
    how = case.nondeterminism()
    if how:
        raise Fault(f"the forward is not deterministic: {how} at the same inputs — its "
                    f"verdicts would mean nothing; seed its randomness (a torch.Generator) "
                    f"or, for nondeterministic kernels, declare nondet_tol")


class _ShrinkBudget:
    """Caps the time Hypothesis spends shrinking one failure (large inputs shrink slowly).

    Once spent, only the smallest failing example found so far still fails, so
    the shrinker runs out of candidates and Hypothesis reports that example.
    """

    def __init__(self, seconds: float = SHRINK_SECONDS):
        self.seconds = seconds
        self.first_failure: float | None = None
        self.best: tuple | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the first failure (0 before it)."""
        return 0.0 if self.first_failure is None else time.monotonic() - self.first_failure

    @property
    def spent(self) -> bool:
        return self.first_failure is not None and self.elapsed > self.seconds

    def failed(self, example: Example) -> None:
        if self.first_failure is None:
            self.first_failure = time.monotonic()
        self.best = _identity(example)

    def is_best(self, example: Example) -> bool:
        return _identity(example) == self.best


def _identity(example: Example) -> tuple:
    values = tuple((n, v.detach().numpy().tobytes()) for n, v in example.values.items())
    return tuple(example.dims.items()), values, example.cotangent_seed


def _first_found(group: BaseExceptionGroup) -> FailureFound:
    for error in group.exceptions:
        if isinstance(error, FailureFound):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first_found(error)
    raise group


@contextmanager
def _precise(device: str) -> Iterator[None]:
    """TF32 off on CUDA while comparing: its 10-bit mantissa would pass for a wrong gradient
    (``_compat.no_tf32``: the flags of the torch at hand)."""
    if not device.startswith("cuda"):
        yield
        return
    with no_tf32():
        yield
