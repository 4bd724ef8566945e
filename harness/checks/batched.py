"""The ``batched`` check: the VJP (and the JVP) under ``torch.func.vmap`` against single calls.

``gradcheck(check_batched_grad=True)`` checks this; per-sample gradients,
``torch.func.jacrev`` and ``jacfwd``, and the harness's own oracle all batch. A
backward that calls ``.item()``, branches in Python on a value, or whose Function
has no vmap rule cannot run under ``vmap``; one whose batching rule is wrong mixes
the elements of a batch. The cotangents of the example and a second draw are
stacked and the VJP is vmapped over them: each element must equal the single
call's. Where forward-mode AD exists, two tangents are stacked likewise and
``torch.func.jvp`` is vmapped over them. Where vmap cannot run at all the item fails
with the reason and the fix; a spec that cannot support vmap leaves ``batched`` out
of its ``checks``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from harness.checks import evaluate
from harness.checks.case import COTANGENT_STRIDE, Case
from harness.checks.contract import reordering
from harness.checks.torch_checks import forward_mode_tangents, tangent_quantity
from harness.errors import Skipped
from harness.numerics.compare import judged
from harness.report import Failure, table
from harness.spec.examples import cotangent

SECOND_DRAW = 104729  # the second cotangent's (and tangent's) seed offset: a prime


def batched_check(case: Case) -> list[Failure]:
    return _batched_vjp(case) or _batched_jvp(case)


def _batched_vjp(case: Case) -> list[Failure]:
    second = tuple(cotangent(v.shape, case.example.cotangent_seed + SECOND_DRAW
                             + COTANGENT_STRIDE * k, v.dtype, case.device)
                   for k, v in enumerate(case.cotangents))
    batch = (tuple(v.clone() for v in case.cotangents), second)
    outputs = [t for t in case.outputs.tensors if t.requires_grad]
    if not outputs:
        return []
    singles = [evaluate.autograd_vjp(case.spec, case.values, case.outputs,
                                     [v.clone() for v in vs], case.example) for vs in batch]
    which = [k for k, t in enumerate(case.outputs.tensors) if t.requires_grad]
    leaves = [case.values[name] for name in case.leaves]

    def vjp(*vs):
        grads = torch.autograd.grad(outputs, leaves, vs, retain_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves))

    stacked = [torch.stack([vs[k] for vs in batch]) for k in which]
    try:
        with _quiet():
            result = torch.func.vmap(vjp)(*stacked)
    except Exception as error:
        return [_cannot(case, "backward", "the VJP", error)]
    return _compared(case, "Gradient of {!r} is wrong under vmap",
                     {name: result[i] for i, name in enumerate(case.leaves)},
                     singles, case.leaves)


def _batched_jvp(case: Case) -> list[Failure]:
    names = case.leaves
    draws = [{n: cotangent(case.values[n].shape, case.example.cotangent_seed + SECOND_DRAW * j
                           + COTANGENT_STRIDE * i + 1, case.values[n].dtype, case.device)
              for i, n in enumerate(names)} for j in (1, 2)]
    try:
        singles = [forward_mode_tangents(case, case.values, tangents) for tangents in draws]
    except Skipped:
        return []  # no forward-mode AD: the VJP part stands alone (forward_mode skips)
    fixed = {n: v.detach() for n, v in case.values.items() if n not in names}
    primals = tuple(case.values[n].detach() for n in names)

    def forward(*leaves):
        result = case.spec.forward(evaluate.arguments(
            case.spec, {**fixed, **dict(zip(names, leaves))}, case.example))
        return _floating(result, case.spec.nondifferentiable_outputs)

    def jvp(*tangents):
        return torch.func.jvp(forward, primals, tangents)[1]

    stacked = [torch.stack([tangents[n] for tangents in draws]) for n in names]
    try:
        with _quiet():
            result = torch.func.vmap(jvp)(*stacked)
    except Exception as error:
        return [_cannot(case, "forward", "torch.func.jvp", error)]
    keys = case.output_keys
    return _compared(case, "Output tangent{} is wrong under vmap",
                     dict(zip(keys, result)), [dict(zip(keys, s)) for s in singles], keys,
                     tangents=draws)


def _floating(result, skipped: frozenset[int] = frozenset()) -> tuple[torch.Tensor, ...]:
    """The differentiated outputs in ``result``: floating, not among ``skipped``."""
    entries = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    return tuple(e for k, e in enumerate(entries) if isinstance(e, torch.Tensor)
                 and (e.is_floating_point() or e.is_complex()) and k not in skipped)


def _compared(case: Case, summary: str, batched, singles, keys: Sequence[str],
              tangents: Sequence[dict[str, torch.Tensor]] | None = None) -> list[Failure]:
    """Each batch element against its single call: within the floor, or the measured
    rounding of the single call (autograd's, or forward mode's along that tangent)."""
    tangent = tangents is not None
    # Measured along the first tangent: the draws are alike in size, and it costs reruns.
    tangent_noise = tangent_quantity(case, tangents[0]) if tangent else None
    for key in keys:
        for j, single in enumerate(singles):
            got, expected = batched[key][j], single[key]
            if torch.equal(got, expected):
                continue
            if tangent:
                def measured(runs: int | None, key=key):
                    rounding = case.rounding("batched tangent", tangent_noise, runs=runs)
                    return {"forward-mode rounding": 2 * rounding[key]}

                mismatch = judged(got, expected,
                                  case.allowance(expected, **reordering(case, expected)), measured)
            else:
                mismatch = case.compare(got, expected, key, extra=reordering(case, expected))
            if mismatch:
                what = "a Function's vmap rule (or batching rule) is likely wrong: it mixes " \
                       "the elements of a batch"
                name = "" if key == "output" else f" ({key})"
                return [case.failure(
                    summary.format(key) if not tangent else summary.format(name),
                    f"batch element {j} differs from the single call — {what}",
                    [*mismatch.lines(), *table({"vmap": got, "single call": expected},
                                               mismatch.worst)],
                    None if tangent else key)]
    return []


def _cannot(case: Case, part: str, what: str, error: Exception) -> Failure:
    text = (str(error).strip().splitlines() or [""])[0]
    if "setup_context" in text:
        fix = ("write the Function in the torch.func style: a forward without ctx and a "
               "setup_context staticmethod, with generate_vmap_rule = True")
    elif "vmap support" in text or "generate_vmap_rule" in text:
        fix = "set generate_vmap_rule = True on the Function, or give it a vmap staticmethod"
    else:
        fix = (f"keep the {part} in tensor operations (no .item(), .tolist() or Python "
               f"branches on values: torch.where), or give its Function a vmap staticmethod")
    return case.failure(
        f"The {part} cannot run under vmap",
        f"torch.func.vmap over {what} raised {type(error).__name__}: {text} — {fix}; a spec "
        f"that cannot support vmap leaves 'batched' out of its checks")


@contextmanager
def _quiet() -> Iterator[None]:
    """vmap's fallback warns of its speed; torch's forward-AD decompositions of jit.script."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*There is a performance drop")
        warnings.filterwarnings("ignore", ".*torch.jit.script", DeprecationWarning)
        yield
