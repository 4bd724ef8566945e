"""Checks built on PyTorch's own machinery: gradcheck, gradgradcheck, forward AD, devices."""

from __future__ import annotations

import math
import re
import warnings

import torch
import torch.autograd.forward_ad as forward_ad
from torch.autograd.gradcheck import GradcheckError

from harness import evaluate, verdict
from harness.compare import compare
from harness.context import LOCALISE_LIMIT, Context, Skipped
from harness.report import Failure, table

GRADCHECK_FULL_LIMIT = 512  # Jacobian entries; past this gradcheck runs in fast mode


def gradcheck_check(ctx: Context) -> list[Failure]:
    return _torch_check(ctx, torch.autograd.gradcheck, "gradcheck")


def gradgradcheck_check(ctx: Context) -> list[Failure]:
    return _torch_check(ctx, torch.autograd.gradgradcheck, "gradgradcheck")


def _torch_check(ctx: Context, check, label: str) -> list[Failure]:
    """Run a torch check on f(s * z) / c at z = x / s: inputs and output of order one.

    gradcheck perturbs every element by the same absolute eps and compares with a
    fixed atol, which drown in rounding at large magnitudes and cross kinks at
    small ones; rescaling makes the step relative and the output of order one,
    while the chain rule through ``s * z`` and ``/ c`` is exact.
    """
    names = ctx.spec.differentiable
    scales = {name: ctx.scale(name) for name in names}
    fixed = {n: v for n, v in ctx.point64.items() if n not in names}

    output_scale = _output_scale(ctx, scales)

    def rescaled(*unit_values):
        values = {n: z * scales[n] for n, z in zip(names, unit_values)}
        return ctx.spec.forward({**fixed, **values, **ctx.dims}) / output_scale

    unit = tuple((ctx.point64[n] / scales[n]).requires_grad_() for n in names)
    entries = sum(z.numel() for z in unit) * max(ctx.result.numel(), 1)
    try:
        check(rescaled, unit, nondet_tol=ctx.spec.nondet_tol,
              fast_mode=entries > GRADCHECK_FULL_LIMIT, raise_exception=True)
    except GradcheckError as error:
        _probe_differentiable(ctx)
        lines = [line for line in str(error).splitlines() if line.strip()][:16]
        culprit = re.search(r"with respect to input (\d+)", str(error))
        name = names[int(culprit.group(1))] if culprit else None
        summary = f"Gradient of {name!r} is wrong" if name else f"torch.autograd.{label} failed"
        return [ctx.failure(summary, verdict.BACKWARD_WRONG,
                            [f"torch.autograd.{label} failed (on inputs and output rescaled "
                             f"to unit scale):", *lines], name)]
    except Exception as error:  # a user forward that breaks under the check
        raise evaluate.Fault(f"{label} raised {type(error).__name__}: {error}") from error
    return []


def _output_scale(ctx: Context, scales: dict[str, torch.Tensor]) -> float:
    """The larger of the output and of the rescaled Jacobian, as far as autograd tells.

    An output far smaller than its sensitivity to the inputs (mean((p - t)^2) with p
    close to t) would magnify the rounding of ``s * z`` past gradcheck's atol. A wrong
    gradient stays wrong relative to any c, so taking its size from autograd hides nothing.
    """
    with torch.no_grad():
        size = float(ctx.output64.abs().max())
        cotangent = float(ctx.cotangent.abs().max())
        for name, scale in scales.items():
            jacobian = ctx.autograd[name].detach().double().cpu() * scale.cpu()
            if jacobian.numel() and cotangent > 0:
                size = max(size, float(jacobian.abs().max()) / cotangent)
    return size if size > 0 and math.isfinite(size) else 1.0


def _probe_differentiable(ctx: Context) -> None:
    """Before blaming the gradient: discard the example if the point has a kink."""
    for name in ctx.spec.differentiable:
        if ctx.point64[name].numel() <= LOCALISE_LIMIT:
            ctx.partials(name)  # raises Discarded where one-sided differences disagree


def forward_mode_check(ctx: Context) -> list[Failure]:
    names = ctx.spec.differentiable
    tangents = {n: ctx.direction(n).to(ctx.dtype) for n in names}
    jvp = _forward_mode_jvp(ctx, tangents)
    v = ctx.cotangent
    forward_side = (v * jvp).double()
    reverse_side = {n: (ctx.autograd[n] * tangents[n]).double() for n in names}
    lhs, rhs = forward_side.sum(), sum(t.sum() for t in reverse_side.values())
    magnitude = forward_side.abs().sum() + sum(t.abs().sum() for t in reverse_side.values())
    noise = sum((ctx.sensitivity[n] * tangents[n].abs().double().cpu()).sum() for n in names)
    allowed = ctx.rtol * magnitude.cpu() + ctx.atol * magnitude.cpu() / max(v.numel(), 1)
    allowed = allowed + noise + ctx.floor * (v.numel() + len(names))
    if ctx.dtype != torch.float64:  # assert_close's absolute atol, element by element
        allowed = allowed + ctx.atol * v.abs().sum().double().cpu()
    failures = []
    if not abs(float(lhs - rhs)) <= float(allowed):
        failure = _dot_product_failure(ctx, tangents, float(lhs), float(rhs), float(allowed))
        if failure:
            failures.append(failure)
    if ctx.spec.jvp is not None:
        failures += _jvp_formula_failures(ctx, tangents, jvp)
    return failures


def _forward_mode_jvp(ctx: Context, tangents) -> torch.Tensor:
    try:
        with forward_ad.dual_level(), warnings.catch_warnings():
            # torch's forward-AD decompositions go through the deprecated torch.jit.script
            warnings.filterwarnings("ignore", ".*torch.jit.script", DeprecationWarning)
            duals = {n: forward_ad.make_dual(v.detach(), tangents.get(n, torch.zeros_like(v)))
                     if n in tangents else v.detach() for n, v in ctx.values.items()}
            output = ctx.spec.forward({**duals, **ctx.dims})
            tangent = forward_ad.unpack_dual(output).tangent
    except (NotImplementedError, RuntimeError) as error:
        text = str(error)
        if "forward AD" in text or "forward mode AD" in text or "jvp" in text:
            raise Skipped(f"forward-mode AD is not available: {text.splitlines()[0]}") from None
        raise evaluate.Fault(f"forward under forward-mode AD raised {text}") from error
    return torch.zeros_like(ctx.result) if tangent is None else tangent


def _dot_product_failure(ctx, tangents, lhs, rhs, allowed) -> Failure | None:
    """A failure only where finite differences side with one mode against the other.

    Forward and reverse mode may round differently where terms cancel; a gap the
    oracle cannot resolve is no evidence that either is wrong.
    """
    oracle = ctx.directional_all(tangents)
    value, bound = float(oracle.value), 3 * float(oracle.error) + allowed
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
        f"   reverse mode <J^T v, u>  = {rhs:.10g}   (up to {allowed:.2g} apart allowed)",
        f"   finite difference        = {value:.10g} (error bound {float(oracle.error):.2g})",
    ]
    return ctx.failure("Forward and reverse mode disagree", found, lines)


def _jvp_formula_failures(ctx, tangents, jvp) -> list[Failure]:
    scope = {n: v.detach() for n, v in ctx.values.items()}
    scope.update(ctx.dims, result=ctx.result.detach(),
                 **{f"{n}_t": t for n, t in tangents.items()})
    formula = evaluate.checked_output(evaluate.call(ctx.spec.jvp, scope), "jvp", ctx.result)
    if formula.shape != jvp.shape:
        raise evaluate.Fault(f"jvp returned shape {tuple(formula.shape)}, the output has "
                             f"shape {tuple(jvp.shape)} — return the output's tangent")
    mismatch = compare(formula, jvp, rtol=ctx.rtol, atol=ctx.atol, slack=ctx.floor,
                       absolute=ctx.dtype != torch.float64)
    if not mismatch:
        return []
    details = [*mismatch.lines(), *table({"jvp formula": formula, "forward mode": jvp},
                                         mismatch.worst)]
    return [ctx.failure("Output tangent is wrong", "the jvp formula is likely wrong", details)]


def devices_check(ctx: Context) -> list[Failure]:
    if ctx.device == "cpu":
        raise Skipped("the devices check compares a CUDA run against CPU: run it on cuda")
    if not torch.cuda.is_available():
        raise Skipped("CUDA not available")
    cpu_values = evaluate.prepared(ctx.spec, ctx.example, ctx.dtype, "cpu")
    result = evaluate.forward(ctx.spec, cpu_values, ctx.dims)
    cpu_grads = evaluate.autograd_vjp(ctx.spec, cpu_values, result, ctx.cotangent.cpu())
    failures = []
    for name, grad in cpu_grads.items():
        mismatch = ctx.compare(ctx.autograd[name], grad, name)
        if mismatch:
            details = [*mismatch.lines(), *table(
                {"cuda": ctx.autograd[name], "cpu": grad}, mismatch.worst)]
            failures.append(ctx.failure(
                f"Gradient of {name!r} differs between CUDA and CPU",
                "one device's kernel is likely wrong", details, name))
    return failures

