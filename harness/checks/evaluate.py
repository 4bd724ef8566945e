"""Running a spec's callables at one example, and catching what they do wrong.

The harness holds an example's inputs as *leaves*: one tensor per input, or per
tensor of a list input (``xs[0]``, ``xs[1]``). ``arguments`` packs them back into
what the spec's callables take: each input by name (a list input as a list), the
dims and the params. A forward's result becomes ``Outputs``: one tensor, or the
entries of the tuple or list it returned, of which the floating ones are
differentiated. A user callable that raises, returns the wrong thing, a non-finite
value, or modifies its input in place raises ``Fault``, which the checks turn into
a failure carrying the example.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from harness.errors import Fault
from harness.spec import Spec
from harness.spec.calls import KeywordCall
from harness.spec.examples import Example
from harness.spec.input import leaf_names

Values = dict[str, torch.Tensor]


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise Fault if the block runs longer than ``seconds`` (main thread, Unix only).

    An outer timer (pytest-timeout's, say) is kept: its deadline still fires its own
    handler if it comes first, and it is re-armed with the time it has left after.
    """
    usable = seconds and hasattr(signal, "setitimer")
    if not usable or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    ours_first = not outer or seconds <= outer
    start = time.monotonic()
    outer_fired = []

    def expire(signum, frame):
        if ours_first:
            raise Fault(f"the example did not finish within {seconds:g} s — make the forward "
                        f"cheaper, lower the dims' maxima, or raise --harness-timeout")
        outer_fired.append(True)
        signal.signal(signal.SIGALRM, previous)  # the outer deadline: its handler's turn
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds if ours_first else outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer and not outer_fired:
            left = outer - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)
        elif outer_fired and interval:
            signal.setitimer(signal.ITIMER_REAL, interval, interval)


def prepared(spec: Spec, example: Example, dtype: torch.dtype, device: str) -> Values:
    """Leaf tensors on ``device``: float ones in ``dtype`` (differentiable ones require
    grad), integer and bool ones as they are."""
    values = {}
    for leaf, value in example.values.items():
        spec_input = spec.inputs[leaf.partition("[")[0]]
        if spec_input.is_integral:
            values[leaf] = value.to(device=device, copy=True)
            continue
        values[leaf] = value.to(dtype=dtype, device=device, copy=True).requires_grad_(
            spec_input.requires_grad)
    return values


def cast(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``value`` in ``dtype``'s precision, keeping what it is: a real value real, a complex
    one complex (float32 and complex64 share a precision), an integer or bool one as it
    is.

    >>> cast(torch.tensor([1 + 2j]), torch.float64).dtype
    torch.complex128
    >>> cast(torch.tensor([1]), torch.float32).dtype
    torch.int64
    """
    precision = _REAL_TWIN.get(dtype, dtype)
    if value.is_complex():
        return value.to(_COMPLEX_TWIN.get(precision, dtype))
    return value.to(precision) if value.is_floating_point() else value


_COMPLEX_TWIN = {torch.float64: torch.complex128, torch.float32: torch.complex64,
                 torch.float16: torch.complex32}
_REAL_TWIN = {complex_: real for real, complex_ in _COMPLEX_TWIN.items()}


def arguments(spec: Spec, values: Mapping[str, Any], example: Example) -> dict[str, Any]:
    """What the spec's callables take: each input (a list input as the list of its
    leaves), the example's dims and params."""
    packed: dict[str, Any] = {}
    for name, spec_input in spec.inputs.items():
        if spec_input.count is None:
            packed[name] = values[name]
        else:
            packed[name] = [values[leaf] for leaf in
                            leaf_names(name, spec_input, example.counts.get(name))]
    return {**packed, **example.dims, **example.params}


@dataclass(frozen=True)
class Outputs:
    """A forward's result: its entries (one, or a tuple's or list's), and which of them
    are differentiated (the floating ones the spec does not declare non-differentiable)."""

    entries: tuple[Any, ...]
    multi: bool  # the forward returned a tuple or list
    skipped: frozenset[int] = frozenset()  # the spec's nondifferentiable_outputs

    @classmethod
    def of(cls, result: Any, role: str, like: torch.Tensor | None,
           skipped: frozenset[int] = frozenset(), *, finite: bool = True) -> Outputs:
        """The outputs, each differentiated one checked (a tensor, floating, on the inputs'
        device and, unless ``finite`` is False — a caller that tests what it computes
        from them — finite)."""
        multi = isinstance(result, (tuple, list))
        entries = tuple(result) if multi else (result,)
        if skipped and (not multi or max(skipped) >= len(entries)):
            raise Fault(f"nondifferentiable_outputs names output {max(skipped)}, but {role} "
                        f"returned {len(entries) if multi else 'a single'} output"
                        f"{'s' if multi and len(entries) > 1 else ''} — name outputs by their "
                        f"index in what it returns, from 0")
        if not multi:
            checked_output(result, role, like, finite=finite)
        else:
            if not entries:
                raise Fault(f"{role} returned an empty {type(result).__name__} — return a "
                            f"tensor, or a tuple of them")
            for k, entry in enumerate(entries):
                if _differentiated(entry) and k not in skipped:
                    checked_output(entry, f"{role} (output {k})", like, finite=finite)
            if not any(_differentiated(e) and k not in skipped for k, e in enumerate(entries)):
                raise Fault(f"{role} returned no differentiated floating-point tensor among "
                            f"its {len(entries)} outputs — return at least one")
        return cls(entries, multi, skipped)

    @cached_property  # the entries never change, and each check asks
    def differentiable(self) -> tuple[int, ...]:
        """The indices of the differentiated outputs: the ones with a cotangent."""
        return tuple(k for k, entry in enumerate(self.entries)
                     if _differentiated(entry) and k not in self.skipped)

    @cached_property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.entries[k] for k in self.differentiable)

    def packed(self, per_output: Sequence[Any]) -> Any:
        """``per_output`` (one per differentiable output) as formulas see grad and result:
        the tensor itself for a single output, else a tuple with one entry per output
        (None for an output that is not differentiated)."""
        if not self.multi:
            return per_output[0]
        slots: list[Any] = [None] * len(self.entries)
        for k, value in zip(self.differentiable, per_output):
            slots[k] = value
        return tuple(slots)

    def seen(self) -> Any:
        """The result as formulas see it: the tensor, or a tuple of every output detached
        (an integer output too: topk's indices are ``result[1]``)."""
        detached = self.detached().entries
        return detached if self.multi else detached[0]

    def label(self, k: int) -> str:
        """How a message names output ``k``: "" for a single output."""
        return f" through output {k}" if self.multi else ""

    def detached(self) -> Outputs:
        return Outputs(tuple(e.detach() if isinstance(e, torch.Tensor) else e
                             for e in self.entries), self.multi, self.skipped)


def _differentiated(entry: Any) -> bool:
    return isinstance(entry, torch.Tensor) and (entry.is_floating_point() or entry.is_complex())


def forward(spec: Spec, values: Mapping[str, torch.Tensor], example: Example,
            originals: Mapping[str, torch.Tensor] | None = None) -> Outputs:
    """The forward's outputs, each floating one checked to be finite, on the inputs'
    device; an input modified in place is a fault. ``originals``: tensors equal to
    ``values`` that the forward cannot reach (the example's own, of which ``prepared``
    made them), to compare with after it instead of copies taken here."""
    originals = originals or {}
    before = {name: originals[name] if _same_kind(originals.get(name), value)
              else value.detach().clone() for name, value in values.items()}
    result = call(spec.forward, arguments(spec, values, example))
    for name, value in values.items():
        if not torch.equal(value.detach(), before[name]):
            raise Fault(
                f"forward modified input {name!r} in place — clone it first "
                f"(x = x.clone()) or use an out-of-place operation"
            )
    return Outputs.of(result, "forward", like=_any(values),
                      skipped=spec.nondifferentiable_outputs)


def _same_kind(original: torch.Tensor | None, value: torch.Tensor) -> bool:
    """Whether ``value`` was copied from ``original`` as it is (same dtype, device, shape)."""
    return (original is not None and original.dtype == value.dtype
            and original.device == value.device and original.shape == value.shape)


def _any(values: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    return next(iter(values.values()), None)


def call(fn: KeywordCall, values: Mapping[str, Any]) -> Any:
    try:
        return fn(values)
    except Fault:
        raise
    except Exception as error:  # any exception from user code is a fault of the spec
        raise Fault(f"{fn.role} raised {type(error).__name__}: {error}") from error


def checked_output(result: Any, role: str, like: torch.Tensor | None, *,
                   finite: bool = True) -> torch.Tensor:
    if not isinstance(result, torch.Tensor):
        raise Fault(f"{role} returned {type(result).__name__}, not a tensor — return a "
                    f"Tensor (or a tuple of them)")
    if not (result.is_floating_point() or result.is_complex()):
        raise Fault(f"{role} returned a {result.dtype} tensor — return a floating-point tensor")
    if like is not None and result.device != like.device:
        raise Fault(f"{role} returned a tensor on {result.device}, the inputs are on "
                    f"{like.device} — create tensors with device=x.device")
    if finite and not _all_finite(result):
        raise Fault(f"{role} returned a non-finite value (nan or inf) inside the declared "
                    f"domain — narrow the inputs' low/high or declare kinks")
    return result


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite. A finite sum says so at a twentieth of isfinite's
    cost (any inf or nan makes the sum inf or nan); only a sum that is not finite — an
    overflow of finite values, or a real inf or nan — pays for the elementwise test."""
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def leaves_of(spec: Spec, example: Example, names: Sequence[str]) -> tuple[str, ...]:
    """The leaves of the inputs ``names`` (a list input stands for each of its tensors)."""
    return tuple(leaf for name in names for leaf in
                 leaf_names(name, spec.inputs[name], example.counts.get(name)))


def autograd_vjp(
    spec: Spec, values: Mapping[str, torch.Tensor], outputs: Outputs,
    cotangents: Sequence[torch.Tensor], example: Example,
) -> Values:
    """The gradients autograd computes through the forward, for the cotangents (one per
    differentiable output), per differentiable leaf."""
    leaves = leaves_of(spec, example, spec.differentiable)
    pairs = [(t, v) for t, v in zip(outputs.tensors, cotangents) if t.requires_grad]
    if not pairs:
        return {leaf: torch.zeros_like(values[leaf]) for leaf in leaves}
    try:
        grads = torch.autograd.grad(
            [t for t, _ in pairs], [values[leaf] for leaf in leaves], [v for _, v in pairs],
            retain_graph=True, allow_unused=True,
        )
    except Exception as error:
        raise Fault(f"backward through the forward raised {type(error).__name__}: {error}") \
            from error
    return {leaf: torch.zeros_like(values[leaf]) if grad is None else grad
            for leaf, grad in zip(leaves, grads)}


def formula_vjp(
    spec: Spec, values: Mapping[str, torch.Tensor], outputs: Outputs,
    cotangents: Sequence[torch.Tensor], example: Example,
) -> Values:
    """The spec's analytic backward for each input it gives one for, per leaf (a list
    input's formula returns one gradient per tensor)."""
    scope = arguments(spec, {name: value.detach() for name, value in values.items()}, example)
    scope.update(grad=outputs.packed(cotangents),
                 result=outputs.seen())
    grads = {}
    for name, fn in spec.backward.items():
        returned = call(fn, scope)
        leaves = leaves_of(spec, example, [name])
        if spec.inputs[name].count is None:
            returned = [returned]
        elif not isinstance(returned, (tuple, list)) or len(returned) != len(leaves):
            raise Fault(f"{fn.role} returned {type(returned).__name__} for a list of "
                        f"{len(leaves)} tensors — return a list with one gradient each")
        for leaf, grad in zip(leaves, returned):
            if isinstance(grad, (int, float)):
                grad = torch.full_like(values[leaf], float(grad))
            grads[leaf] = checked_gradient(grad, fn.role, values[leaf])
    return grads


def checked_gradient(grad: Any, role: str, value: torch.Tensor) -> torch.Tensor:
    grad = checked_output(grad, role, like=value)
    if grad.shape != value.shape:
        raise Fault(
            f"{role} returned shape {tuple(grad.shape)} for an input of shape "
            f"{tuple(value.shape)} — a gradient has its input's shape (sum over "
            f"broadcast dimensions, e.g. sum(..., dim=0, keepdim=True))"
        )
    if grad.dtype != value.dtype:
        raise Fault(f"{role} returned {grad.dtype} for a {value.dtype} input — "
                    f"keep the input's dtype")
    return grad


def contracted(
    spec: Spec, example: Example, cotangents: Sequence[torch.Tensor],
    offsets: Sequence[torch.Tensor] | None = None, sizes: torch.Tensor | None = None,
    centre: Sequence[torch.Tensor] | None = None,
):
    """phi(values) = sum over differentiable outputs k of <v_k, f_k(values) - offset_k>:
    the real scalar that finite differences see (for complex outputs, the real part of
    sum conj(v) f, whose gradient is PyTorch's: the conjugate Wirtinger derivative, x2).

    With ``offsets`` the outputs at the point differentiated, the outputs that a step
    leaves unchanged (most of them, for an elementwise forward and one element
    moved) stay out of the sum's rounding; the differences of phi are the same.
    With ``sizes`` as well (per output element, part by part and flat: the size of
    each term phi sums), phi returns [phi, the sizes of the terms that moved] — the
    terms whose rounding a difference of phi carries.
    With ``centre`` (the outputs at the point) instead of offsets, phi subtracts their
    contraction, one scalar, rather than each output element: the same differences
    without a pass over the outputs each evaluation, carrying the rounding of every
    term — which is what a directional derivative's error bound counts anyway.
    """
    flat = (None if not cotangents else cotangents[0].reshape(-1) if len(cotangents) == 1
            else torch.cat([v.reshape(-1) for v in cotangents]))

    def contract(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the contraction, the flat change it contracted)."""
        change = (tensors[0].reshape(-1) if len(tensors) == 1 else
                  torch.cat([t.reshape(-1) for t in tensors])).to(flat.dtype)
        # One matrix-vector product per batch of steps under vmap, not a product and a sum.
        return ((flat.conj() @ change).real if change.is_complex() else change @ flat), change

    at_centre = None if centre is None else contract(centre)[0]

    def phi(values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        outputs = spec.forward(arguments(spec, values, example))
        entries = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
        tensors = [e for k, e in enumerate(entries)
                   if _differentiated(e) and k not in spec.nondifferentiable_outputs]
        if offsets is not None:
            tensors = [t - o for t, o in zip(tensors, offsets)]
        value, change = contract(tensors)
        if at_centre is not None:
            value = value - at_centre
        if sizes is None:
            return value
        parts = torch.view_as_real(change) if change.is_complex() else change
        moved = (parts != 0).reshape(-1).to(sizes.dtype) @ sizes  # NaN != 0: moved
        return torch.stack([value, moved])

    return phi
