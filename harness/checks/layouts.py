"""The ``layouts`` check: the same example, its inputs and cotangents in other memory layouts.

PyTorch hands a backward non-contiguous gradients all the time (``.mT``, slicing,
``expand`` after a ``.sum()``), and a kernel that reads memory as if it were
contiguous returns wrong numbers without a word. Each layout family relays every
floating input and every cotangent at once (the example's values, another layout):

- transposed (the last two dims' memory swapped: ``x.mT.contiguous().mT``);
- sliced out of a tensor twice as wide whose gaps are NaN (as OpInfo's
  ``noncontiguous_like``): a stride-blind kernel reads NaN;
- at a nonzero storage offset, behind a NaN (contiguous otherwise);
- channels_last, for 4-d tensors;
- a stride-0 expanded cotangent (its values repeated along its longest dim; the
  contiguous run then takes the same values in fresh memory).

The forward's outputs and the gradients must equal the contiguous run's — bit for bit,
or, where a kernel sums in another order for another layout, within the allowance
(the dtype's floor and autograd's measured rounding) — and be finite; every run
keeps autograd's contract (``contract.watched_vjp``). Where a family fails, each
tensor is relaid alone to name the one that breaks ("cotangent transposed, strides
(1, 3): backward raised RuntimeError: view size is not compatible ...").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from harness.checks import evaluate
from harness.checks.case import Case
from harness.checks.contract import reordering, watched_vjp
from harness.errors import Fault
from harness.report import Failure, table

STRIDE_BLIND = "the forward or backward likely reads memory as if it were contiguous"


def _transposed(t: torch.Tensor) -> torch.Tensor | None:
    if t.dim() < 2 or t.shape[-1] < 2 or t.shape[-2] < 2:
        return None
    return t.mT.contiguous().mT


def _nan_gaps(t: torch.Tensor) -> torch.Tensor | None:
    if t.dim() == 0 or t.numel() == 0:
        return None
    wide = torch.full((*t.shape[:-1], 2 * t.shape[-1]), _nan(t.dtype), dtype=t.dtype,
                      device=t.device)
    out = wide[..., ::2]
    if out.is_contiguous():  # one element per row and one row: nothing to skip
        return None
    return out.copy_(t)


def _offset(t: torch.Tensor) -> torch.Tensor | None:
    if t.numel() == 0:
        return None
    behind = torch.full((t.numel() + 1,), _nan(t.dtype), dtype=t.dtype, device=t.device)
    return behind[1:].view(t.shape).copy_(t)


def _channels_last(t: torch.Tensor) -> torch.Tensor | None:
    if t.dim() != 4:
        return None
    out = t.contiguous(memory_format=torch.channels_last)
    return None if out.stride() == t.contiguous().stride() else out


def _expanded(t: torch.Tensor) -> torch.Tensor | None:
    if t.dim() == 0:
        return None
    longest = max(range(t.dim()), key=lambda d: t.shape[d])
    if t.shape[longest] < 2:
        return None
    return t.narrow(longest, 0, 1).expand(t.shape)


def _nan(dtype: torch.dtype) -> float | complex:
    return complex(float("nan"), float("nan")) if dtype.is_complex else float("nan")


@dataclass(frozen=True)
class Layout:
    """A family of layouts: how it relays a tensor (None where it cannot change it)."""

    name: str
    relaid: Callable[[torch.Tensor], torch.Tensor | None]
    cotangent_only: bool = False  # a layout that changes the values (expanded)
    nan_gaps: bool = False  # memory around the values holds NaN, for a stride-blind read


LAYOUTS = (
    Layout("transposed", _transposed),
    Layout("sliced from a NaN-filled tensor", _nan_gaps, nan_gaps=True),
    Layout("at storage offset 1", _offset, nan_gaps=True),
    Layout("channels_last", _channels_last),
    Layout("expanded (stride 0)", _expanded, cotangent_only=True),
)


def layouts_check(case: Case) -> list[Failure]:
    base = watched_vjp(case, case.values, case.outputs.tensors,
                       [v.clone() for v in case.cotangents])
    if base.failures:
        return base.failures
    for layout in LAYOUTS:
        failures = _expanded_runs(case, layout) if layout.cotangent_only else \
            _relaid(case, base.grads, layout)
        if failures:
            return failures
    return []


def _subjects(case: Case) -> list[tuple[str, int | str]]:
    """What a family relays: each floating leaf, then each cotangent (by index)."""
    leaves = [("input", name) for name, value in case.values.items()
              if value.is_floating_point() or value.is_complex()]
    return [*leaves, *(("cotangent", k) for k in range(len(case.cotangents)))]


def _relaid(case: Case, base: Mapping[str, torch.Tensor], layout: Layout,
            only: Sequence[tuple[str, int | str]] | None = None) -> list[Failure]:
    """The example with ``only`` (default: every subject) in ``layout``; where that
    fails with several relaid, each alone, to name the one that breaks."""
    values, cotangents = dict(case.values), [v.clone() for v in case.cotangents]
    relaid: list[tuple[tuple[str, int | str], torch.Tensor]] = []
    for subject in only or _subjects(case):
        kind, key = subject
        original = case.values[key] if kind == "input" else case.cotangents[key]
        moved = layout.relaid(original.detach())
        if moved is None:
            continue
        relaid.append((subject, moved))
        if kind == "input":
            values[key] = moved.requires_grad_(original.requires_grad)
        else:
            cotangents[key] = moved
    if not relaid:
        return []
    what = _described(case, layout, relaid)
    failures = _judged(case, base, values, cotangents, what, gaps=layout.nan_gaps)
    if failures and len(relaid) > 1:
        for subject, _ in sorted(relaid, key=lambda s: s[0][0] == "input"):  # cotangents first
            alone = _relaid(case, base, layout, [subject])
            if alone:
                return alone
    return failures


def _described(case: Case, layout: Layout, relaid) -> str:
    parts = []
    for (kind, key), tensor in relaid:
        if kind == "input":
            subject = f"input {key!r}"
        else:
            subject = f"cotangent of output {case.outputs.differentiable[key]}" \
                if case.outputs.multi else "cotangent"
        parts.append(f"{subject} {layout.name}, strides {tuple(tensor.stride())}")
    return "; ".join(parts)


def _expanded_runs(case: Case, layout: Layout) -> list[Failure]:
    """Each cotangent expanded (stride 0) in turn, against the same values contiguous."""
    for k, v in enumerate(case.cotangents):
        moved = layout.relaid(v.detach())
        if moved is None:
            continue
        fresh = [c.clone() for c in case.cotangents]
        fresh[k] = moved.contiguous()
        expected = watched_vjp(case, case.values, case.outputs.tensors, fresh)
        if expected.failures:
            return expected.failures
        cotangents = [c.clone() for c in case.cotangents]
        cotangents[k] = moved
        what = _described(case, layout, [(("cotangent", k), moved)])
        failures = _judged(case, expected.grads, case.values, cotangents, what,
                           outputs=case.outputs.tensors)
        if failures:
            return failures
    return []


def _judged(case: Case, base: Mapping[str, torch.Tensor], values, cotangents, what: str,
            outputs: Sequence[torch.Tensor] | None = None, gaps: bool = False) -> list[Failure]:
    """The forward (unless ``outputs`` are given) and the VJP at ``values`` and
    ``cotangents``, against the contiguous run's."""
    if outputs is None:
        try:
            result = evaluate.forward(case.spec, values, case.example)
        except Fault as fault:
            return [case.failure("The forward fails for a layout", f"{what}: {fault}")]
        for key, new, old in zip(case.output_keys, result.tensors, case.outputs.tensors):
            if torch.equal(new.detach(), old.detach()):
                continue
            mismatch = case.compare(new, old, key, sources=("output",),
                                    extra=reordering(case, old))
            if mismatch:
                return [case.failure(
                    "The forward's output differs for a layout",
                    f"with {what}, its {key} differs from the contiguous run's — {STRIDE_BLIND}",
                    [*mismatch.lines(), *table({"layout": new, "contiguous": old},
                                               mismatch.worst)])]
        outputs = result.tensors
    try:
        run = watched_vjp(case, values, outputs, cotangents, what)
    except Fault as fault:
        return [case.failure("The backward fails for a layout", f"{what}: {fault}")]
    if run.failures:
        return run.failures
    for name in case.leaves:
        grad, expected = run.grads[name], base[name]
        if torch.equal(grad, expected):
            continue
        if not bool(torch.isfinite(grad).all()) and bool(torch.isfinite(expected).all()):
            columns = {"layout": grad, "contiguous": expected}
            worst = _non_finite(grad)
            return [case.failure(
                f"Gradient of {name!r} is not finite for a layout",
                f"with {what}, it holds NaN or inf where the contiguous run's is finite — "
                f"{STRIDE_BLIND}" + (" (the gaps hold NaN)" if gaps else ""),
                table(columns, worst), name)]
        mismatch = case.compare(grad, expected, name, extra=reordering(case, expected))
        if mismatch:
            return [case.failure(
                f"Gradient of {name!r} is wrong",
                f"with {what}, it differs from the contiguous run's — {STRIDE_BLIND}",
                [*mismatch.lines(), *table({"layout": grad, "contiguous": expected},
                                           mismatch.worst)], name)]
    return []


def _non_finite(grad: torch.Tensor) -> list[tuple[int, ...]]:
    flat = (~torch.isfinite(grad.detach())).reshape(-1).nonzero().reshape(-1)[:4].cpu()
    return [tuple(int(i) for i in torch.unravel_index(j, grad.shape)) for j in flat]
