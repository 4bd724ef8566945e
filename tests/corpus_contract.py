"""Backwards that break AUTOGRAD'S CONTRACT, each with a correct twin.

Every entry is a ``Broken``: a spec whose backward gives the right numbers for a
contiguous example and still breaks its callers (a layout it cannot read, a batch it
cannot run, an undefined gradient it cannot take, a dtype or a cotangent it spoils),
the check that must catch it, how the headline starts, and its ``twin``: the same
function written right, which passes every contract check. ``SIGNATURES`` are right
specs of every signature (several outputs, integer inputs, params, lists, complex,
4-d convolutions) that must pass the contract checks too.

The bugs are in custom ``torch.autograd.Function``s: a plain torch forward keeps the
contract by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd import Function
from torch.nn import functional as F

from harness import Input, Spec

CONTRACT_CHECKS = ("layouts", "batched", "undefined")
BOTH = ("float64", "float32")
MATRIX = Input(("m", "n"))
IMAGE = Input(("b", "c", "h", "w"), low=-2.0, high=2.0)
IMAGE_DIMS = {"b": (1, 2), "c": (2, 3), "h": (2, 3), "w": (1, 3)}


@dataclass(frozen=True)
class Broken:
    """A backward that breaks the contract, what must catch it, and its right twin."""

    spec: Spec
    twin: Spec
    check: str
    headline: str  # how the failure's first line starts
    bug: str
    dtypes: tuple[str, ...] = BOTH

    @property
    def name(self) -> str:
        return self.spec.name


def square(name: str, backward, *, materialize: bool = True):
    """x -> Function.apply(x) = x ** 2, with ``backward(x, grad)`` as its backward."""

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    def body(ctx, grad):
        (x,) = ctx.saved_tensors
        return backward(x, grad)

    function = type(name, (Function,), {"forward": staticmethod(forward),
                                        "backward": staticmethod(body)})
    return lambda x: function.apply(x)


def _contiguous_strides(shape) -> tuple[int, ...]:
    return torch.empty(shape, device="meta").stride()


def _stride_blind(x, grad):
    """Reads grad's memory as if it were contiguous (a kernel taking grad.data_ptr())."""
    flat = grad.as_strided(grad.shape, _contiguous_strides(grad.shape))
    return 2 * x * flat


def _item_scaled(x, grad):
    scale = grad.abs().max().item()  # a Python float: vmap cannot batch it
    return 2 * x * (grad / scale) * scale


def _item_free(x, grad):
    scale = grad.abs().amax()
    return 2 * x * (grad / scale) * scale


def _nchw_written_into(out: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """A kernel that writes NCHW order into ``out``'s memory, whatever its layout."""
    out.as_strided((out.numel(),), (1,)).copy_(result.reshape(-1))
    return out


def _mislaid_for_channels_last(x, grad):
    """Allocates the gradient like x (channels_last for a channels_last x) and writes it
    in NCHW order: right for every other layout, scrambled for channels_last."""
    result = (2 * x * grad).contiguous()
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return _nchw_written_into(torch.empty_like(x), result)
    return result


def _laid_for_channels_last(x, grad):
    result = (2 * x * grad).contiguous()
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.empty_like(x).copy_(result)
    return result


class SinCos(Function):
    """(sin x, cos x); backward adds both cotangents without checking for None."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)  # undefined cotangents arrive as None
        ctx.save_for_backward(x)
        return torch.sin(x), torch.cos(x)

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        return grad_sin * torch.cos(x) - grad_cos * torch.sin(x)


class SinCosOnesForNone(SinCos):
    """Checks for None, and takes an undefined cotangent as ones (it must act as zero)."""

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        grad_sin = torch.ones_like(x) if grad_sin is None else grad_sin
        grad_cos = torch.ones_like(x) if grad_cos is None else grad_cos
        return grad_sin * torch.cos(x) - grad_cos * torch.sin(x)


class SinCosChecked(SinCos):
    """The twin: an undefined cotangent contributes nothing."""

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        total = torch.zeros_like(x)
        if grad_sin is not None:
            total = total + grad_sin * torch.cos(x)
        if grad_cos is not None:
            total = total - grad_cos * torch.sin(x)
        return total


def _spec(name: str, forward, inputs=None, **options) -> Spec:
    return Spec(name=name, forward=forward, inputs=inputs or {"x": MATRIX}, **options)


BROKEN: list[Broken] = [
    Broken(_spec("view_grad", square("ViewGrad", lambda x, g: (2 * x.reshape(-1) * g.view(-1))
                                     .view(x.shape))),
           _spec("reshape_grad", square("ReshapeGrad", lambda x, g: (
               2 * x.reshape(-1) * g.reshape(-1)).reshape(x.shape))),
           "layouts", "The backward fails for a layout",
           "grad.view(-1): raises for a transposed or sliced cotangent"),
    Broken(_spec("stride_blind", square("StrideBlind", _stride_blind)),
           _spec("stride_aware", square("StrideAware", lambda x, g: _stride_blind(
               x, g.contiguous()))),
           "layouts", "Gradient of 'x'",
           "reads grad through as_strided with contiguous strides (a kernel on data_ptr)"),
    Broken(_spec("mutates_grad", square("MutatesGrad", lambda x, g: g.mul_(2 * x))),
           _spec("grad_out_of_place", square("OutOfPlace", lambda x, g: g.mul(2 * x))),
           "layouts", "The backward changed its incoming gradient in place",
           "grad.mul_(2 x): the right gradient, and the caller's cotangent changed"),
    Broken(_spec("backward_calls_item", square("ItemScaled", _item_scaled)),
           _spec("backward_without_item", square("ItemFree", _item_free)),
           "batched", "The backward cannot run under vmap",
           "the backward calls .item(), which vmap cannot batch"),
    Broken(_spec("undefined_grad_not_checked", lambda x: SinCos.apply(x)),
           _spec("undefined_grad_checked", lambda x: SinCosChecked.apply(x)),
           "undefined", "The backward fails when output 0's gradient is undefined",
           "a two-output Function adds grad[1] without checking it is None"),
    Broken(_spec("undefined_grad_as_ones", lambda x: SinCosOnesForNone.apply(x)),
           _spec("undefined_grad_as_zero", lambda x: SinCosChecked.apply(x)),
           "undefined", "Gradient of 'x' is wrong when output",
           "a two-output Function takes an undefined cotangent as ones"),
    Broken(_spec("returns_float32", square("ReturnsFloat32", lambda x, g: (2 * x * g).float())),
           _spec("keeps_dtype", square("KeepsDtype", lambda x, g: (2 * x * g).to(x.dtype))),
           "layouts", "The backward breaks autograd's contract",
           "returns a float32 gradient for a float64 input (autograd casts it back)",
           dtypes=("float64",)),
    Broken(_spec("channels_last_mislabelled", square("MislaidLayout", _mislaid_for_channels_last),
                 {"x": IMAGE}, dims=IMAGE_DIMS),
           _spec("channels_last_kept", square("LaidLayout", _laid_for_channels_last), {"x": IMAGE},
                 dims=IMAGE_DIMS),
           "layouts", "Gradient of 'x' is wrong",
           "a gradient in the wrong layout for a channels_last input only"),
]


class SplitScale(Function):
    """Two outputs (2x, x^3), the torch.func style, vmap rule generated, a jvp."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return 2 * x, x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_double, grad_cube):
        (x,) = ctx.saved_tensors
        total = torch.zeros_like(x)
        if grad_double is not None:
            total = total + 2 * grad_double
        if grad_cube is not None:
            total = total + 3 * x**2 * grad_cube
        return total

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return 2 * x_t, 3 * x**2 * x_t


SIGNATURES: list[Spec] = [
    _spec("sig_two_outputs", lambda x: (torch.sin(x) @ x.mT, torch.cos(x).sum(-1))),
    _spec("sig_function_two_outputs", lambda x: SplitScale.apply(x)),
    _spec("sig_matmul", lambda a, b: a @ b, {"a": Input(("m", "k")), "b": Input(("k", "n"))}),
    _spec("sig_integer_index", lambda x, i: torch.gather(x, 1, i),
          {"x": MATRIX, "i": Input(("m", "n"), dtype="int64", low=0, high="n")}),
    _spec("sig_params", lambda x, dim: torch.cumsum(x, dim), params={"dim": [0, -1]}),
    _spec("sig_list_input", lambda xs: torch.stack(xs).prod(0),
          {"xs": Input(("m", "n"), count=(1, 3))}),
    _spec("sig_topk", lambda x: torch.topk(x, 1, dim=-1), {"x": Input(("m", "n"), unique=True)}),
    _spec("sig_complex", lambda z: z * z.conj() + z**2, {"z": MATRIX},
          dtypes=("complex128", "complex64")),
    _spec("sig_conv2d", lambda x, weight: F.conv2d(x, weight, padding=1),
          {"x": IMAGE, "weight": Input(("o", "c", 3, 3), low=-1.0, high=1.0)},
          dims={**IMAGE_DIMS, "o": (1, 3)}),
]

_NAMES = [e.name for e in BROKEN] + [e.twin.name for e in BROKEN] + [s.name for s in SIGNATURES]
assert len(set(_NAMES)) == len(_NAMES), "spec names must be unique"
