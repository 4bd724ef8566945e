"""Running a spec's callables at one example, and catching what they do wrong.

A user callable that raises, returns a non-tensor, the wrong shape, dtype or
device, a non-finite value, or modifies its input in place raises ``Fault``,
which the checks turn into a failure carrying the example.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from harness.errors import Fault
from harness.spec import Spec
from harness.spec.calls import KeywordCall
from harness.spec.examples import Example

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
    """Leaf tensors of ``dtype`` on ``device``; differentiable inputs require grad."""
    return {
        name: value.to(dtype=dtype, device=device, copy=True).requires_grad_(
            spec.inputs[name].requires_grad
        )
        for name, value in example.values.items()
    }


def forward(spec: Spec, values: Mapping[str, torch.Tensor], dims: Mapping[str, int]):
    """The forward's output, checked to be a finite floating tensor."""
    before = {name: value.detach().clone() for name, value in values.items()}
    result = call(spec.forward, {**values, **dims})
    for name, value in values.items():
        if not torch.equal(value.detach(), before[name]):
            raise Fault(
                f"forward modified input {name!r} in place — clone it first "
                f"(x = x.clone()) or use an out-of-place operation"
            )
    return checked_output(result, "forward", like=next(iter(values.values())))


def call(fn: KeywordCall, values: Mapping[str, Any]) -> Any:
    try:
        return fn(values)
    except Fault:
        raise
    except Exception as error:  # any exception from user code is a fault of the spec
        raise Fault(f"{fn.role} raised {type(error).__name__}: {error}") from error


def checked_output(result: Any, role: str, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(result, torch.Tensor):
        raise Fault(f"{role} returned {type(result).__name__}, not a tensor — return a Tensor")
    if not result.is_floating_point():
        raise Fault(f"{role} returned a {result.dtype} tensor — return a floating-point tensor")
    if result.device != like.device:
        raise Fault(f"{role} returned a tensor on {result.device}, the inputs are on "
                    f"{like.device} — create tensors with device=x.device")
    if not torch.isfinite(result).all():
        raise Fault(f"{role} returned a non-finite value (nan or inf) inside the declared "
                    f"domain — narrow the inputs' low/high or declare kinks")
    return result


def autograd_vjp(
    spec: Spec, values: Mapping[str, torch.Tensor], result: torch.Tensor, cotangent: torch.Tensor
) -> Values:
    """The gradients that autograd computes through the forward, for the cotangent."""
    names = spec.differentiable
    if not result.requires_grad:
        return {name: torch.zeros_like(values[name]) for name in names}
    try:
        grads = torch.autograd.grad(
            result, [values[n] for n in names], cotangent, retain_graph=True, allow_unused=True
        )
    except Exception as error:
        raise Fault(f"backward through the forward raised {type(error).__name__}: {error}") \
            from error
    return {
        name: torch.zeros_like(values[name]) if grad is None else grad
        for name, grad in zip(names, grads)
    }


def formula_vjp(
    spec: Spec,
    values: Mapping[str, torch.Tensor],
    dims: Mapping[str, int],
    result: torch.Tensor,
    cotangent: torch.Tensor,
) -> Values:
    """The spec's analytic backward for each input it gives one for."""
    scope = {name: value.detach() for name, value in values.items()}
    scope.update(dims, grad=cotangent, result=result.detach())
    grads = {}
    for name, fn in spec.backward.items():
        grad = call(fn, scope)
        if isinstance(grad, (int, float)):
            grad = torch.full_like(values[name], float(grad))
        grads[name] = checked_gradient(grad, fn.role, values[name])
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
    spec: Spec, dims: Mapping[str, int], cotangent: torch.Tensor,
    offset: torch.Tensor | float = 0.0,
):
    """phi(values) = <cotangent, forward(values) - offset>, the scalar that finite
    differences see.

    With ``offset`` the output at the point differentiated, the outputs that a step
    leaves unchanged (most of them, for an elementwise forward and one element
    moved) stay out of the sum's rounding; the differences of phi are the same.
    """

    flat_cotangent = cotangent.reshape(-1)

    def phi(values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # One matrix-vector product per batch of steps under vmap, not a product and a sum.
        change = spec.forward({**values, **dims}) - offset
        return change.reshape(-1).to(flat_cotangent.dtype) @ flat_cotangent

    return phi
