"""Checks built on PyTorch's own machinery: gradcheck, gradgradcheck, forward AD, devices."""

from __future__ import annotations

import math
import re
import warnings

import torch
import torch.autograd.forward_ad as forward_ad
from torch.autograd.gradcheck import GradcheckError

from harness.checks import evaluate, verdict
from harness.checks.case import Case
from harness.checks.gradients import LOCALISE_LIMIT, oracle_failures
from harness.errors import Fault, Skipped
from harness.numerics.allowance import ORACLE_ERROR_FACTOR, Allowance, real_view
from harness.numerics.compare import judged
from harness.report import Failure, table

NO_FORWARD_AD = ("forward AD", "forward mode AD", "jvp")  # torch's words for "none here"
GRADCHECK_FULL_LIMIT = 512  # Jacobian entries; past this gradcheck runs in fast mode


def gradcheck_check(case: Case) -> list[Failure]:
    return _torch_check(case, torch.autograd.gradcheck, "gradcheck", _triangulated)


def gradgradcheck_check(case: Case) -> list[Failure]:
    return _torch_check(case, torch.autograd.gradgradcheck, "gradgradcheck", _second_order)


def _torch_check(case: Case, check, label: str, judge) -> list[Failure]:
    """Run a torch check on f(s * z) / c at z = x / s: inputs and output of order one.

    gradcheck perturbs every element by the same absolute eps and compares with a
    fixed atol, which drown in rounding at large magnitudes and cross kinks at
    small ones; rescaling makes the step relative and the output of order one,
    while the chain rule through ``s * z`` and ``/ c`` is exact.
    """
    names = case.leaves
    scales = {name: case.oracle.element_scale(name) for name in names}
    fixed = {n: v for n, v in case.point64.items() if n not in names}

    output_scale = _output_scale(case, scales)

    def rescaled(*unit_values):
        values = {n: z * scales[n] for n, z in zip(names, unit_values)}
        result = case.spec.forward(evaluate.arguments(case.spec, {**fixed, **values},
                                                      case.example))
        if isinstance(result, (tuple, list)):  # the floating outputs: the differentiated
            return tuple(e / output_scale for k, e in enumerate(result)
                         if _floating(e) and k not in case.spec.nondifferentiable_outputs)
        return result / output_scale

    unit = tuple((case.point64[n] / scales[n]).requires_grad_() for n in names)
    outputs = sum(t.numel() for t in case.outputs.tensors)
    entries = sum(z.numel() for z in unit) * max(outputs, 1)
    try:
        check(rescaled, unit, nondet_tol=case.spec.nondet_tol,
              fast_mode=entries > GRADCHECK_FULL_LIMIT, raise_exception=True)
    except GradcheckError as error:
        return judge(case, label, str(error))
    except Exception as error:  # a user forward that breaks under the check
        raise Fault(f"{label} raised {type(error).__name__}: {error}") from error
    return []


def _output_scale(case: Case, scales: dict[str, torch.Tensor]) -> float:
    """The larger of the output and of the rescaled Jacobian, as far as autograd tells.

    An output far smaller than its sensitivity to the inputs (mean((p - t)^2) with p
    close to t) would magnify the rounding of ``s * z`` past gradcheck's atol. A wrong
    gradient stays wrong relative to any c, so taking its size from autograd hides nothing.
    """
    with torch.no_grad():
        size = max((float(o.abs().amax()) for o in case.output64 if o.numel()), default=0.0)
        cotangent = max((float(v.abs().amax()) for v in case.cotangents if v.numel()),
                        default=0.0)
        for name, scale in scales.items():
            jacobian = case.autograd[name].detach().abs().double().cpu() * scale.cpu()
            if jacobian.numel() and cotangent > 0:
                size = max(size, float(jacobian.abs().max()) / cotangent)
    return size if size > 0 and math.isfinite(size) else 1.0


def _floating(entry) -> bool:
    return isinstance(entry, torch.Tensor) and (entry.is_floating_point() or entry.is_complex())


def _triangulated(case: Case, label: str, error: str) -> list[Failure]:
    """gradcheck's verdict, where the harness's own oracle agrees that autograd is wrong.

    gradcheck's fixed step and tolerances misjudge ill-conditioned points (a forward
    that rounds far above its own size, a gradient that is rounding noise); where the
    float64 oracle, whose error bound counts the forward's measured rounding, finds
    autograd right, it overrules gradcheck: it resolves errors 10^4 times smaller.
    """
    confirmed = oracle_failures(case)  # raises Discarded at a kink, as before a verdict
    if not confirmed:
        return []
    return _failure(case, label, error, confirmed[0].input,
                    ["The finite-difference oracle agrees:", *confirmed[0].details])


def _second_order(case: Case, label: str, error: str) -> list[Failure]:
    """gradgradcheck's verdict, unless the point has a kink (the oracle says so)."""
    for name in case.leaves:
        if case.point64[name].numel() <= LOCALISE_LIMIT:
            case.oracle.partials(name)  # raises Discarded where one-sided differences disagree
    return _failure(case, label, error, None)


def _failure(case: Case, label: str, error: str, fallback: str | None, extra=()) -> list[Failure]:
    lines = [line for line in error.splitlines() if line.strip()][:16]
    culprit = re.search(r"with respect to input (\d+)", error)
    names = case.leaves
    name = names[int(culprit.group(1))] if culprit else fallback
    summary = f"Gradient of {name!r} is wrong" if name else f"torch.autograd.{label} failed"
    return [case.failure(summary, verdict.BACKWARD_WRONG,
                         [f"torch.autograd.{label} failed (on inputs and output rescaled "
                          f"to unit scale):", *lines, *extra], name)]


def forward_mode_check(case: Case) -> list[Failure]:
    names = case.leaves
    tangents = {n: evaluate.cast(case.oracle.as_input(n, case.oracle.direction(n)), case.dtype)
                for n in names}
    jvp = forward_mode_tangents(case, case.values, tangents)
    cotangents = case.cotangents
    lhs = sum(_inner(v, t) for v, t in zip(cotangents, jvp))
    rhs = sum(_inner(tangents[n], case.autograd[n]) for n in names)
    cheap = Allowance()
    for v, t in zip(cotangents, jvp):
        cheap = cheap.plus(**dict(case.allowance(t).projected(v)))
    for n in names:
        cheap = cheap.plus(**dict(case.allowance(case.autograd[n]).projected(tangents[n])))

    tangent_noise = tangent_quantity(case, tangents)

    def measured(runs: int | None) -> dict[str, torch.Tensor]:
        tangent = case.rounding("tangent", tangent_noise, runs=runs)
        forward = sum((tangent[key] * real_view(v).abs().double().cpu()).sum()
                      for key, v in zip(case.output_keys, cotangents))
        reverse = sum((case.rounding("autograd", runs=runs)[n]
                       * real_view(tangents[n]).abs().double().cpu()).sum() for n in names)
        return {"forward-mode rounding": forward, "autograd rounding": reverse}

    failures = []
    mismatch = judged(lhs, rhs, cheap, measured)
    if mismatch:
        failure = _dot_product_failure(case, tangents, float(lhs), float(rhs), mismatch)
        if failure:
            failures.append(failure)
    if case.spec.jvp is not None:
        failures += _jvp_formula_failures(case, tangents, jvp, tangent_noise)
    return failures


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Re sum conj(a) b, in float64 (complex128), on the CPU."""
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_complex() or b.is_complex():
        return (a.to(torch.complex128).conj() * b.to(torch.complex128)).sum().real
    return (a.double() * b.double()).sum()


def forward_mode_tangents(case: Case, point, tangents) -> tuple[torch.Tensor, ...]:
    """``dual_tangents``, where torch has no forward-mode AD for an op a ``Skipped``, and
    any other exception the spec's code raises under dual numbers a ``Fault`` with its
    type — the spec failing, not a traceback."""
    try:
        return dual_tangents(case, point, tangents)
    except (NotImplementedError, RuntimeError) as error:
        text = str(error)
        if any(words in text for words in NO_FORWARD_AD):
            raise Skipped(f"forward-mode AD is not available: {text.splitlines()[0]}") from None
        raise Fault(f"forward under forward-mode AD raised {text}") from error
    except (Fault, Skipped):
        raise
    except Exception as error:  # the spec's own code, under dual numbers
        raise Fault(f"forward under forward-mode AD raised {type(error).__name__}: "
                    f"{error}") from error


def dual_tangents(case: Case, point, tangents) -> tuple[torch.Tensor, ...]:
    """The tangent of each differentiable output of the forward at ``point`` along
    ``tangents`` (forward-mode AD)."""
    with forward_ad.dual_level(), warnings.catch_warnings():
        # torch's forward-AD decompositions go through the deprecated torch.jit.script
        warnings.filterwarnings("ignore", ".*torch.jit.script", DeprecationWarning)
        duals = {n: forward_ad.make_dual(v.detach(), tangents[n]) if n in tangents
                 else v.detach() for n, v in point.items()}
        result = case.spec.forward(evaluate.arguments(case.spec, duals, case.example))
        entries = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        outputs = [e for k, e in enumerate(entries)
                   if _floating(e) and k not in case.spec.nondifferentiable_outputs]
        unpacked = [forward_ad.unpack_dual(o) for o in outputs]
        return tuple(torch.zeros_like(u.primal) if u.tangent is None else u.tangent
                     for u in unpacked)


def tangent_quantity(case: Case, tangents):
    """Forward mode's output tangents as a quantity the noise model reruns."""

    def tangent_at(point, dtype) -> dict[str, torch.Tensor]:
        moved = {n: evaluate.cast(t, dtype) for n, t in tangents.items()}
        try:
            return dict(zip(case.output_keys, dual_tangents(case, point, moved)))
        except Exception as error:  # under simulated rounding, or a step away
            raise Fault(f"forward under forward-mode AD raised {error}") from error

    return tangent_at


def _dot_product_failure(case, tangents, lhs, rhs, mismatch) -> Failure | None:
    """A failure only where finite differences side with one mode against the other.

    Forward and reverse mode may round differently where terms cancel; a gap the
    oracle cannot resolve is no evidence that either is wrong.
    """
    oracle = case.oracle.directional_all(tangents)
    allowed = mismatch.abs_allowed
    value = float(oracle.value)
    bound = ORACLE_ERROR_FACTOR * float(oracle.error) + allowed
    forward_right, reverse_right = abs(lhs - value) <= bound, abs(rhs - value) <= bound
    if forward_right and reverse_right:
        return None
    if reverse_right:
        found = "forward-mode AD (the jvp) is likely wrong"
    elif forward_right:
        found = verdict.BACKWARD_WRONG
    else:
        found = verdict.ALL_DISAGREE
    lines = [
        "Dot-product test <v, J u> = <J^T v, u> fails:",
        f"   forward mode <v, J u>    = {lhs:.10g}",
        f"   reverse mode <J^T v, u>  = {rhs:.10g}   (up to {mismatch.allowed})",
        f"   finite difference        = {value:.10g} (error bound {float(oracle.error):.2g})",
    ]
    return case.failure("Forward and reverse mode disagree", found, lines)


def _jvp_formula_failures(case, tangents, jvp, tangent_noise) -> list[Failure]:
    formula = _jvp_formula(case, case.values, tangents, case.outputs)

    def formula_at(point, dtype) -> dict[str, torch.Tensor]:
        values = {n: v.detach() for n, v in point.items()}
        result = evaluate.call(case.spec.forward,
                               evaluate.arguments(case.spec, values, case.example))
        outputs = evaluate.Outputs.of(result, "forward", like=None,
                                      skipped=case.spec.nondifferentiable_outputs)
        moved = {n: evaluate.cast(t, dtype) for n, t in tangents.items()}
        return dict(zip(case.output_keys, _jvp_formula(case, point, moved, outputs)))

    failures = []
    for k, (key, ours, theirs) in enumerate(zip(case.output_keys, formula, jvp)):
        def measured(runs: int | None, key=key) -> dict[str, torch.Tensor]:
            return {"jvp formula rounding": case.rounding("jvp", formula_at, runs=runs)[key],
                    "forward-mode rounding": case.rounding("tangent", tangent_noise,
                                                           runs=runs)[key]}

        mismatch = judged(ours, theirs, case.allowance(theirs), measured)
        if mismatch:
            details = [*mismatch.lines(), *table({"jvp formula": ours, "forward mode": theirs},
                                                 mismatch.worst)]
            which = case.outputs.label(case.outputs.differentiable[k])
            failures.append(case.failure(f"Output tangent{which} is wrong",
                                         "the jvp formula is likely wrong", details))
    return failures


def _jvp_formula(case: Case, point, tangents, outputs) -> tuple[torch.Tensor, ...]:
    """The spec's jvp at ``point``: one tangent per differentiable output, each checked to
    have its output's shape."""
    scope = evaluate.arguments(case.spec, {n: v.detach() for n, v in point.items()},
                               case.example)
    scope.update(result=outputs.seen(),
                 **{f"{n}_t": t for n, t in _packed_tangents(case, tangents).items()})
    returned = evaluate.call(case.spec.jvp, scope)
    if outputs.multi:
        if not isinstance(returned, (tuple, list)) or len(returned) != len(outputs.entries):
            raise Fault(f"jvp returned {type(returned).__name__}, the forward returns "
                        f"{len(outputs.entries)} outputs — return one tangent per output "
                        f"(None for an output that is not differentiated)")
        returned = [returned[k] for k in outputs.differentiable]
    else:
        returned = [returned]
    checked = []
    for k, (tangent, output) in enumerate(zip(returned, outputs.tensors)):
        tangent = evaluate.checked_output(tangent, "jvp", output)
        if tangent.shape != output.shape:
            raise Fault(f"jvp returned shape {tuple(tangent.shape)} for output {k} of shape "
                        f"{tuple(output.shape)} — return the output's tangent")
        checked.append(tangent)
    return tuple(checked)


def _packed_tangents(case: Case, tangents) -> dict[str, object]:
    """The tangents as the jvp takes them: ``x_t`` per input, a list input's as a list."""
    return {name: value for name, value in
            evaluate.arguments(case.spec, {**case.values, **tangents}, case.example).items()
            if name in case.spec.differentiable}


def devices_check(case: Case) -> list[Failure]:
    if case.device == "cpu":
        raise Skipped("the devices check compares a CUDA run against CPU: run it on cuda")
    if not torch.cuda.is_available():
        raise Skipped("CUDA not available")
    cpu_values = evaluate.prepared(case.spec, case.example, case.dtype, "cpu")
    outputs = evaluate.forward(case.spec, cpu_values, case.example)
    cpu_grads = evaluate.autograd_vjp(case.spec, cpu_values, outputs,
                                      [v.cpu() for v in case.cotangents], case.example)
    failures = []
    for name, grad in cpu_grads.items():
        def measured(runs: int | None, name=name) -> dict[str, torch.Tensor]:  # each device rounds
            return {"rounding on each device": 2 * case.rounding("autograd", runs=runs)[name]}

        mismatch = judged(case.autograd[name], grad, case.allowance(grad), measured)
        if mismatch:
            details = [*mismatch.lines(), *table(
                {"cuda": case.autograd[name], "cpu": grad}, mismatch.worst)]
            failures.append(case.failure(
                f"Gradient of {name!r} differs between CUDA and CPU",
                "one device's kernel is likely wrong", details, name))
    return failures

