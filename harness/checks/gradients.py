"""The checks that compare gradients: analytic, reference and finite_difference.

Each takes a Case (one example made concrete) and returns the failures it found
there (an empty list when the gradient is right). It raises ``Discarded`` for an
example where the gradient cannot be judged.
"""

from __future__ import annotations

import torch

from harness._compat import assert_close_tolerances
from harness.checks import evaluate, verdict
from harness.checks.case import Case
from harness.errors import Discarded, Fault
from harness.numerics.allowance import ORACLE_ERROR_FACTOR, Allowance, Tolerance, real_view
from harness.numerics.compare import Mismatch, compare, judged
from harness.report import Failure, table

ELEMENTWISE_ORACLE = 64  # inputs up to this size get every partial derivative
# ... and larger ones up to BATCHED_ORACLE elements where the forward runs under vmap and
# the batch of moved points stays small (elements x output elements): one element whose
# gradient is tiny beside the others' (the saturated ones of a tanh over 400) is seen
# only element by element — a directional estimate carries every other term's rounding.
BATCHED_ORACLE = 1024
BATCHED_ORACLE_ENTRIES = 2**18
# With a reference, an implementation may err against the float64 reference by
# this many times the reference's own error in the item's dtype (flash-attention's
# tests use 2): it is allowed to round as badly as the reference, with room for
# rounding differently.
REFERENCE_FACTOR = 2.0
LOCALISE_LIMIT = 4096  # a failing larger input is localised up to this size


def analytic(case: Case) -> list[Failure]:
    failures = []
    for name, formula in case.formula.items():
        mismatch = case.compare(formula, case.autograd[name], name,
                                sources=("formula", "autograd"))
        if mismatch:
            failures.append(_triangulated(case, name, formula, "analytic", mismatch))
    return failures


def reference(case: Case) -> list[Failure]:
    """The spec's forward and autograd against the reference, run in float64.

    In float64 each side's measured rounding is allowed. Below float64 the rule of
    flash-attention's tests, per element: the implementation may err against the
    reference in float64 by REFERENCE_FACTOR times what the reference errs in the
    item's dtype — as it does here, or as its measured rounding says it may. The
    implementation's own rounding is not allowed for: measured on its own kernel,
    a kernel that rounds badly would excuse itself.
    """
    truth = case.reference_at(case.point64, torch.float64)
    own_error = None if case.full_precision else _reference_error(case, truth)
    for key, output in zip(case.output_keys, case.outputs.tensors):
        mismatch = _against_reference(case, output, truth, key, "output", own_error)
        if mismatch:
            columns = {"forward": output, "reference": truth[key]}
            which = "" if key == "output" else f" ({key})"
            return [case.failure(f"Forward disagrees with the reference{which}", details=[
                *mismatch.lines(), *table(columns, mismatch.worst)])]
    failures = []
    for name in case.leaves:
        mismatch = _against_reference(case, case.autograd[name], truth, name, "autograd",
                                      own_error)
        if mismatch:
            failures.append(_triangulated(
                case, name, truth[name], "reference", mismatch, verdict.REFERENCE_WRONG,
                subject_source="reference"))
    return failures


def _against_reference(case: Case, actual, truth, key: str, source: str,
                       own_error: dict[str, torch.Tensor] | None) -> Mismatch | None:
    if own_error is None:  # float64: each side's measured rounding
        return case.compare(actual, truth[key], key, sources=(source, "reference"))
    cheap = case.allowance(truth[key], **{"reference's own error": own_error[key]})

    def measured(runs: int | None):  # how the reference rounds, not what an ulp of its input does
        rounding = case.rounding("reference", neighbours=False, runs=runs)[key]
        return {"reference rounding": REFERENCE_FACTOR * rounding}

    return judged(actual, truth[key], cheap, measured)


def _reference_error(case: Case, truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """REFERENCE_FACTOR x |the reference in the item's dtype - the reference in float64|:
    what the reference errs here (it raises a Fault where it is not finite)."""
    own = case.reference_at(case.values, case.dtype)
    errors = {key: (own[key].detach().double().cpu() - value.cpu()).abs()
              for key, value in truth.items()}
    for key, error in errors.items():
        if not bool(torch.isfinite(error).all()):
            what = "output" if key == "output" else f"gradient of {key!r}"
            raise Fault(
                f"the reference's {what} is not finite in {case.dtype} here, while it is in "
                f"float64 — the reference cannot stand for a {case.dtype} kernel at this point;"
                f" narrow the inputs' low/high")
    return {key: REFERENCE_FACTOR * error for key, error in errors.items()}


def finite_difference(case: Case) -> list[Failure]:
    return [*_expected_failures(case), *oracle_failures(case)]


def oracle_failures(case: Case) -> list[Failure]:
    """Autograd against the float64 oracle, for every differentiable input."""
    failures = []
    for name in case.leaves:
        autograd = case.autograd[name]
        if _elementwise(case, name, autograd.numel()):
            estimate, mismatch = _against_partials(case, name, autograd, "autograd")
            if mismatch:
                failures.append(_oracle_failure(case, name, estimate, mismatch))
        else:
            failures += _directional_failures(case, name, autograd)
    return failures


def _elementwise(case: Case, name: str, size: int) -> bool:
    """Whether input ``name`` (of ``size`` elements) gets every partial derivative."""
    if size <= ELEMENTWISE_ORACLE:
        return True
    entries = size * sum(t.numel() for t in case.outputs.tensors)
    return (size <= BATCHED_ORACLE and entries <= BATCHED_ORACLE_ENTRIES
            and case.oracle.batches(name))


def _against_partials(case: Case, name: str, gradient, source: str):
    """(estimate, mismatch) of ``gradient`` against the oracle's partial derivatives; where
    they disagree, judged again with the oracle's error bound counting the forward's
    measured rounding (costly, so only where it decides)."""
    for measured in (False, True):
        estimate = case.oracle.partials(name, measured=measured)
        mismatch = case.compare(real_view(gradient), estimate.value, name, sources=(source,),
                                oracle_error=estimate.error)
        if mismatch is None:
            break
    return estimate, mismatch


def _directional_failures(case: Case, name: str, autograd: torch.Tensor) -> list[Failure]:
    """Compare <g, u> with the oracle along a random direction and along g itself.

    The random direction catches errors in any component; the gradient's own
    direction sums |g_i|^2 terms with no cancellation, so a small relative error
    spread over every element does not average out.
    """
    oracle = case.oracle
    floor = case.allowance(autograd)  # the same along each direction
    for direction in (oracle.direction(name), oracle.gradient_direction(name, autograd)):
        if direction is None:
            continue
        failure = _directional_failure(case, name, autograd, direction, floor)
        if failure:
            return [failure]
    return []


def _directional_failure(case: Case, name: str, autograd, direction,
                         floor: Allowance) -> Failure | None:
    estimate, mismatch = _against_directional(case, name, autograd, direction, "autograd",
                                              floor)
    if not mismatch:
        return None
    lines = [
        "Directional derivative along a direction u:",
        f"   <autograd gradient, u> = {float(_dot(autograd, direction)):.10g}",
        f"   finite difference      = {float(estimate.value):.10g} "
        f"(error bound {float(estimate.error):.2g}, up to {mismatch.allowed})",
    ]
    if autograd.numel() <= LOCALISE_LIMIT:
        try:
            partial, element = _against_partials(case, name, autograd, "autograd")
        except Discarded:
            element = None
        if element:
            return _oracle_failure(case, name, partial, element, lines)
    found = verdict.BACKWARD_WRONG
    if name in case.spec.backward:
        formula = case.formula[name]
        formula_right = _against_directional(case, name, formula, direction, "formula")[1]
        found = verdict.against_oracle(
            formula_right is None, _agree(case, name, formula, autograd, ("formula", "autograd")))
    _discard_if_unreliable(found)
    case.discard_if_forward_differs()
    return case.failure(f"Gradient of {name!r} is wrong", found, lines, name)


def _against_directional(case: Case, name: str, gradient, direction, source: str,
                         floor: Allowance | None = None):
    """(estimate, mismatch) of <gradient, u> against the oracle's directional derivative,
    with the gradient's per-element allowance (``floor``, where the caller has it)
    projected on |u|; judged again with the forward's measured rounding where they
    disagree."""
    weights = case.oracle.weights(name, direction)  # |u|: the projections' and the step's
    total = weights.sum()
    projected = (floor if floor is not None else case.allowance(gradient)).projected_on(
        weights, total)

    def measured(runs: int | None):
        return {f"{source} rounding": (case.rounding(source, runs=runs)[name]
                                       * weights).sum()}

    for noisy in (False, True):
        estimate = case.oracle.directional(name, direction, measured=noisy, step=float(total))
        cheap = projected.plus(oracle=ORACLE_ERROR_FACTOR * estimate.error.cpu())
        mismatch = judged(_dot(gradient, direction), estimate.value.cpu(), cheap, measured)
        if mismatch is None:
            break
    return estimate, mismatch


def _dot(gradient: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """<g, u> in real coordinates (Re sum conj(g) u for a complex g)."""
    return torch.dot(real_view(gradient.detach()).double().reshape(-1),
                     direction.reshape(-1)).cpu()


def _agree(case: Case, name: str, a, b, sources) -> bool:
    return case.compare(a, b, name, sources=sources) is None


def _oracle_failure(case: Case, name: str, estimate, mismatch, extra=()) -> Failure:
    formula = case.formula.get(name) if case.spec.backward else None
    columns = {"autograd": case.autograd[name], "finite difference": estimate.value}
    formula_right = agrees_with_autograd = None
    if formula is not None:
        columns = {"analytic": formula, **columns}
        formula_right = case.compare(real_view(formula), estimate.value, name,
                                     sources=("formula",),
                                     oracle_error=estimate.error) is None
        agrees_with_autograd = _agree(case, name, formula, case.autograd[name],
                                      ("formula", "autograd"))
    found = verdict.against_oracle(formula_right, agrees_with_autograd)
    _discard_if_unreliable(found)
    case.discard_if_forward_differs()
    details = [*extra, *mismatch.lines(), *table(columns, mismatch.worst)]
    return case.failure(f"Gradient of {name!r} is wrong", found, details, name)


def _discard_if_unreliable(found: str) -> None:
    """The oracle disagrees with autograd, and the spec's formula sides with autograd:
    the oracle is the odd one out, and a check does not fail on an oracle it doubts."""
    if found == verdict.ORACLE_UNRELIABLE:
        raise Discarded("finite differences disagree with autograd and the formula, which "
                        "agree: an ill-conditioned point for finite differences")


def _triangulated(case, name, subject, label, mismatch, subject_wrong=verdict.FORMULA_WRONG,
                  subject_source="formula"):
    autograd = case.autograd[name]
    columns = {label: subject, "autograd": autograd}
    subject_right = autograd_right = None
    if autograd.numel() <= LOCALISE_LIMIT:
        try:
            oracle, autograd_wrong = _against_partials(case, name, autograd, "autograd")
        except Discarded:
            oracle = None
        if oracle is not None:
            columns["finite difference"] = oracle.value
            autograd_right = autograd_wrong is None
            subject_right = case.compare(real_view(subject), oracle.value, name,
                                         sources=(subject_source,),
                                         oracle_error=oracle.error) is None
    found = verdict.odd_one_out(subject_right, autograd_right, subject_wrong)
    details = [*mismatch.lines(), *table(columns, mismatch.worst)]
    return case.failure(f"Gradient of {name!r} is wrong", found, details, name)


def _expected_failures(case: Case) -> list[Failure]:
    """An explicit example's ``expected`` gradients (unit cotangent) against autograd."""
    example = case.example
    if not example.expected:
        return []
    ones = [torch.ones_like(t) for t in case.outputs.tensors]
    grads = evaluate.autograd_vjp(case.spec, case.values, case.outputs, ones, case.example)
    # Expected values are typed by a person, to a few decimals: assert_close's
    # tolerances, or the example's own.
    rtol, atol = assert_close_tolerances(case.dtype)
    tolerance = Tolerance.of(case.dtype, {
        "rtol": rtol if example.rtol is None else example.rtol,
        "atol": atol if example.atol is None else example.atol})
    failures = []
    for name, expected in example.expected.items():
        mismatch = compare(grads[name], expected, tolerance.floor(expected))
        if mismatch:
            columns = {"autograd": grads[name], "expected": expected}
            failures.append(case.failure(
                f"Gradient of {name!r} differs from the example's expected value",
                "the forward or the expected value is wrong",
                [*mismatch.lines(), *table(columns, mismatch.worst)], name))
    return failures
