"""Autograd's contract with a backward, and the ``undefined`` check.

A hand-written backward can return the right numbers and still break its callers:

- it returns a gradient of another dtype, device or shape than its input's (autograd
  casts a float32 gradient of a float64 input back silently, and sums a broadcast
  one down: the values then carry float32 rounding, or a reduction nobody wrote);
- it changes its incoming gradient in place (``grad.mul_(2)``): autograd hands the
  same tensor to every consumer of the output, and the caller's cotangent changes;
- it leaves ``.grad`` on an input (a ``.backward()`` call inside a forward or
  backward): ``torch.autograd.grad`` callers never asked for one.

``watched_vjp`` takes a VJP and finds each of these; ``layouts`` runs it for every
layout. ``undefined`` leaves each output's cotangent undefined in turn (what
``torch.autograd.grad`` does for an output that is not used): the gradients must be
what a zero cotangent gives, and the backward must not raise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.autograd import Function

from harness._compat import expected_gradient, function_class
from harness.checks.case import Case
from harness.errors import Fault, Skipped
from harness.numerics.allowance import real_view
from harness.report import Failure, table

CONTRACT = "The backward breaks autograd's contract"
# Another layout or a batch may sum in another order (a transposed or batched matmul
# kernel): a few units in the last place of the largest element, allowed cheaply
# before the measured rounding is paid for. A kernel that reads the wrong memory is off
# by the size of the values.
REORDERING_ULPS = 16.0


def reordering(case: Case, expected: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cheap term for a sum taken in another order: REORDERING_ULPS of the largest
    element of ``expected``."""
    magnitude = real_view(expected.detach()).abs().double().cpu()
    largest = magnitude.max() if magnitude.numel() else torch.tensor(0.0, dtype=torch.float64)
    largest = torch.where(torch.isfinite(largest), largest, 0.0)
    eps = torch.finfo(case.dtype).eps
    return {"reordered sums": REORDERING_ULPS * eps * largest.expand(magnitude.shape)}


@dataclass
class Vjp:
    """One watched VJP: the gradients per leaf, or the failures it broke the contract with."""

    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def watched_vjp(case: Case, values: Mapping[str, torch.Tensor], outputs: Sequence[torch.Tensor],
                cotangents: Sequence[torch.Tensor], what: str = "") -> Vjp:
    """The gradients of ``outputs`` (with ``cotangents``) per differentiable leaf, each
    custom Function's returned gradients checked against its inputs, the cotangents
    checked unchanged and the leaves' ``.grad`` checked unset. ``what`` names the layout
    in a failure ("" for the contiguous run). A backward that raises is a Fault."""
    before = [v.detach().clone() for v in cotangents]
    pairs = [(t, v) for t, v in zip(outputs, cotangents) if t.requires_grad]
    leaves = case.leaves
    with returned_gradients([t for t, _ in pairs]) as breaches:
        if pairs:
            try:
                grads = torch.autograd.grad([t for t, _ in pairs], [values[n] for n in leaves],
                                            [v for _, v in pairs], retain_graph=True,
                                            allow_unused=True)
            except Exception as error:
                raise Fault(f"backward raised {type(error).__name__}: "
                            f"{_first_line(error)}") from error
        else:
            grads = [None] * len(leaves)
    run = Vjp({n: torch.zeros_like(values[n]) if g is None else g for n, g in zip(leaves, grads)})
    where = f" (with {what})" if what else ""
    for breach in dict.fromkeys(breaches):  # a class and its base both watched: once
        run.failures.append(case.failure(CONTRACT, breach + where))
    for k, (v, saved) in enumerate(zip(cotangents, before)):
        if not torch.equal(v.detach(), saved):
            which = f"of output {case.outputs.differentiable[k]} " if case.outputs.multi else ""
            run.failures.append(case.failure(
                "The backward changed its incoming gradient in place",
                f"the cotangent {which}differs after the backward{where} — autograd hands the "
                f"same tensor to every consumer of an output, so the caller's gradient "
                f"changes; compute out of place (grad * 2, not grad.mul_(2)) or clone first",
                table({"before": saved, "after": v}, _changed(saved, v))))
    for name, value in values.items():
        if isinstance(value, torch.Tensor) and value.grad is not None:
            run.failures.append(case.failure(
                f".grad was left on input {name!r}",
                f"the forward or backward accumulated into {name}.grad{where} — a "
                f".backward() call inside? torch.autograd.grad callers never asked for it; "
                f"use torch.autograd.grad inside instead", name=name))
    return run


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _changed(before: torch.Tensor, after: torch.Tensor) -> list[tuple[int, ...]]:
    if before.shape != after.shape or before.numel() == 0:
        return []
    flat = (before.reshape(-1) != after.detach().reshape(-1)).nonzero().reshape(-1)[:4]
    return [tuple(int(i) for i in torch.unravel_index(j, before.shape)) for j in flat]


@contextmanager
def returned_gradients(roots: Sequence[torch.Tensor]) -> Iterator[list[str]]:
    """Within the block, each custom Function's backward in the graph of ``roots`` is
    watched: a gradient it returns whose dtype, device or shape is not its input's is
    listed (autograd's engine would cast or sum it silently). The classes are restored
    after, whatever happens."""
    breaches: list[str] = []
    patched = []
    try:
        for cls in _function_classes(roots):
            name = "vjp" if cls.vjp is not Function.vjp else "backward"
            patched.append((cls, name, cls.__dict__.get(name)))
            setattr(cls, name,
                    staticmethod(_watching(cls, name, getattr(cls, name), breaches)))
        yield breaches
    finally:
        for cls, name, original in reversed(patched):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def _function_classes(roots: Sequence[torch.Tensor]) -> list[type]:
    seen, classes = set(), []
    stack = [t.grad_fn for t in roots if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        cls = function_class(node)
        if cls is not None and cls not in classes:
            classes.append(cls)
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return classes


def _watching(cls: type, method: str, backward, breaches: list[str]):
    def watched(ctx, *grads):
        returned = backward(ctx, *grads)
        entries = returned if isinstance(returned, tuple) else (returned,)
        # One entry per forward argument, one edge per tensor argument: a non-tensor argument
        # (Scale.apply(alpha, x)) has no edge, so arguments and edges pair up through the
        # ones that need a gradient, which are exactly the edges with a node.
        wanted = [i for i, needed in enumerate(ctx.needs_input_grad) if needed]
        edges = [edge for edge in ctx.next_functions if edge[0] is not None]
        for i, (node, nr) in zip(wanted, edges):
            grad = entries[i] if i < len(entries) else None
            if not isinstance(grad, torch.Tensor):
                continue
            expected = expected_gradient(node, nr)
            breach = expected and _breach(grad, *expected)
            if breach:
                breaches.append(f"{cls.__name__}.{method} returned, as gradient {i}, {breach}")
        return returned

    return watched


def _breach(grad: torch.Tensor, shape, dtype, device) -> str | None:
    if grad.dtype != dtype:
        return (f"{str(grad.dtype).removeprefix('torch.')} for a "
                f"{str(dtype).removeprefix('torch.')} input — autograd casts it back "
                f"silently, so the gradient carries the lower precision; keep the input's dtype")
    if grad.device != device:
        return f"a gradient on {grad.device} for an input on {device} — keep the input's device"
    if tuple(grad.shape) != tuple(shape):
        return (f"shape {tuple(grad.shape)} for an input of shape {tuple(shape)} — autograd "
                f"sums it down silently; a gradient has its input's shape")
    return None


# --- the undefined check ---------------------------------------------------------------------

def undefined_check(case: Case) -> list[Failure]:
    """Each differentiable output's cotangent left undefined in turn (the output left out of
    torch.autograd.grad), against the same VJP with that cotangent zero."""
    if len(case.cotangents) < 2:
        raise Skipped("the forward has one differentiable output: no cotangent can be left "
                      "undefined")
    tensors = case.outputs.tensors
    for k, index in enumerate(case.outputs.differentiable):
        rest = [j for j in range(len(tensors)) if j != k]
        zero = [torch.zeros_like(v) if j == k else v.clone() for j, v in enumerate(case.cotangents)]
        expected = watched_vjp(case, case.values, tensors, zero)
        if expected.failures:
            return expected.failures
        try:
            left_out = watched_vjp(case, case.values, [tensors[j] for j in rest],
                                   [case.cotangents[j].clone() for j in rest])
        except Fault as fault:
            return [case.failure(
                f"The backward fails when output {index}'s gradient is undefined",
                f"{fault} — autograd passes None for an output that is not used (with "
                f"ctx.set_materialize_grads(False)): check `grad is None` before using it")]
        if left_out.failures:
            return left_out.failures
        for name in case.leaves:
            mismatch = case.compare(left_out.grads[name], expected.grads[name], name,
                                    extra=reordering(case, expected.grads[name]))
            if mismatch:
                columns = {"undefined": left_out.grads[name], "zero": expected.grads[name]}
                return [case.failure(
                    f"Gradient of {name!r} is wrong when output {index}'s gradient is undefined",
                    f"it differs from the gradient with a zero cotangent for output {index} — an "
                    f"undefined gradient (None) must act as zero",
                    [*mismatch.lines(), *table(columns, mismatch.worst)], name)]
    return []
