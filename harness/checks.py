"""The checks, one function each with the same signature, registered in CHECKS in order.

A check takes a Context (one example made concrete) and returns the failures it
found there (an empty list when the gradient is right). It raises ``Discarded``
for an example where the gradient cannot be judged and ``Skipped`` when it cannot
run for this spec at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness import evaluate, verdict
from harness.compare import compare
from harness.context import ELEMENTWISE_ORACLE, LOCALISE_LIMIT, Context, Discarded, Skipped
from harness.names import CHECK_DESCRIPTIONS, CHECK_NAMES
from harness.report import Failure, table
from harness.spec import Spec
from harness.taylor import taylor_check
from harness.torch_checks import (
    devices_check,
    forward_mode_check,
    gradcheck_check,
    gradgradcheck_check,
)


@dataclass(frozen=True)
class Check:
    """A registered check: how it runs, when it applies, and in which dtypes."""

    name: str
    run: Callable[[Context], list[Failure]]
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


def analytic(ctx: Context) -> list[Failure]:
    failures = []
    for name, formula in ctx.formula.items():
        autograd = ctx.autograd[name]
        mismatch = ctx.compare(formula, autograd, name)
        if mismatch:
            failures.append(_triangulated(ctx, name, formula, "analytic", mismatch))
    return failures


def reference(ctx: Context) -> list[Failure]:
    spec = ctx.spec
    reference_values = {
        name: value.detach().clone().requires_grad_(value.requires_grad)
        for name, value in ctx.values.items()
    }
    output = evaluate.checked_output(
        evaluate.call(spec.reference, {**reference_values, **ctx.dims}), "reference", ctx.result
    )
    mismatch = True
    if output.shape == ctx.result.shape:
        mismatch = compare(ctx.result, output, rtol=ctx.rtol, atol=ctx.atol)
    if mismatch:
        return [ctx.failure("Forward disagrees with the reference", details=_shapes_or(
            mismatch, ctx.result, output))]
    expected = evaluate.autograd_vjp(spec, reference_values, output, ctx.cotangent)
    failures = []
    for name in spec.differentiable:
        mismatch = ctx.compare(ctx.autograd[name], expected[name], name)
        if mismatch:
            failures.append(_triangulated(
                ctx, name, expected[name], "reference", mismatch, verdict.REFERENCE_WRONG))
    return failures


def finite_difference(ctx: Context) -> list[Failure]:
    failures = _expected_failures(ctx)
    for name in ctx.spec.differentiable:
        autograd = ctx.autograd[name]
        if autograd.numel() <= ELEMENTWISE_ORACLE:
            estimate = ctx.partials(name)
            mismatch = ctx.compare(autograd, estimate.value, name, estimate.error)
            if mismatch:
                failures.append(_oracle_failure(ctx, name, estimate, mismatch))
        else:
            failures += _directional_failures(ctx, name, autograd)
    return failures


def _directional_failures(ctx: Context, name: str, autograd: torch.Tensor) -> list[Failure]:
    """Compare <g, u> with the oracle along a random direction and along g itself.

    The random direction catches errors in any component; the gradient's own
    direction sums |g_i|^2 terms with no cancellation, so a small relative error
    spread over every element does not average out.
    """
    for direction in (ctx.direction(name), ctx.gradient_direction(name, autograd)):
        if direction is None:
            continue
        failure = _directional_failure(ctx, name, autograd, direction)
        if failure:
            return [failure]
    return []


def _directional_failure(ctx, name, autograd, direction) -> Failure | None:
    estimate = ctx.directional(name, direction)
    terms = (autograd.double() * direction).cpu()
    slack = (ctx.sensitivity[name] * direction.abs().cpu()).sum() + 3 * estimate.error.cpu()
    slack = slack + ctx.rtol * terms.abs().sum()
    mismatch = ctx.compare(terms.sum(), estimate.value, name, slack / 3)
    if not mismatch:
        return None
    lines = [
        "Directional derivative along a direction u:",
        f"   <autograd gradient, u> = {float(terms.sum()):.10g}",
        f"   finite difference      = {float(estimate.value):.10g} "
        f"(error bound {float(estimate.error):.2g}, up to {float(slack):.2g} apart allowed)",
    ]
    if autograd.numel() <= LOCALISE_LIMIT:
        try:
            partial = ctx.partials(name)
        except Discarded:
            partial = None
        element = partial and ctx.compare(autograd, partial.value, name, partial.error)
        if element:
            return _oracle_failure(ctx, name, partial, element, lines)
    return ctx.failure(f"Gradient of {name!r} is wrong", verdict.BACKWARD_WRONG, lines, name)


def _oracle_failure(ctx, name, estimate, mismatch, extra=()) -> Failure:
    formula = ctx.formula.get(name) if ctx.spec.backward else None

    def agrees(a, b):
        return ctx.compare(a, b, name, estimate.error) is None

    columns = {"autograd": ctx.autograd[name], "finite difference": estimate.value}
    if formula is not None:
        columns = {"analytic": formula, **columns}
    found = verdict.against_oracle(formula, ctx.autograd[name], estimate.value, agrees)
    details = [*extra, *mismatch.lines(), *table(columns, mismatch.worst)]
    return ctx.failure(f"Gradient of {name!r} is wrong", found, details, name)


def _triangulated(ctx, name, subject, label, mismatch, subject_wrong=verdict.FORMULA_WRONG):
    autograd = ctx.autograd[name]
    oracle = None
    if autograd.numel() <= LOCALISE_LIMIT:
        try:
            oracle = ctx.partials(name)
        except Discarded:
            oracle = None

    def agrees(a, b):
        return ctx.compare(a, b, name, oracle.error) is None

    columns = {label: subject, "autograd": autograd}
    if oracle is not None:
        columns["finite difference"] = oracle.value
    found = verdict.odd_one_out(
        subject, autograd, None if oracle is None else oracle.value, agrees, subject_wrong)
    details = [*mismatch.lines(), *table(columns, mismatch.worst)]
    return ctx.failure(f"Gradient of {name!r} is wrong", found, details, name)


def _expected_failures(ctx: Context) -> list[Failure]:
    """An explicit example's ``expected`` gradients (unit cotangent) against autograd."""
    example = ctx.example
    if not example.expected:
        return []
    ones = torch.ones_like(ctx.result)
    grads = evaluate.autograd_vjp(ctx.spec, ctx.values, ctx.result, ones)
    rtol = example.rtol if example.rtol is not None else ctx.rtol
    atol = example.atol if example.atol is not None else ctx.atol
    failures = []
    for name, expected in example.expected.items():
        mismatch = compare(grads[name], expected, rtol=rtol, atol=atol)
        if mismatch:
            columns = {"autograd": grads[name], "expected": expected}
            failures.append(ctx.failure(
                f"Gradient of {name!r} differs from the example's expected value",
                "the forward or the expected value is wrong",
                [*mismatch.lines(), *table(columns, mismatch.worst)], name))
    return failures


def _shapes_or(mismatch, result, output) -> list[str]:
    if mismatch is True:
        return [f"forward shape {tuple(result.shape)}, reference shape {tuple(output.shape)}"]
    return [*mismatch.lines(), *table({"forward": result, "reference": output}, mismatch.worst)]


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
assert tuple(CHECKS) == CHECK_NAMES, "harness.names.CHECK_NAMES must list CHECKS in order"

__all__ = ["CHECKS", "Check", "Discarded", "Skipped"]
