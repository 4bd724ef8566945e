"""Custom autograd Functions with hand-written backward passes: the pattern to copy.

Each Function is what a kernel author ships: a forward (here plain torch; in
practice a fused CUDA or Triton kernel) and a hand-derived ``backward`` (and
``jvp`` where it is natural). The spec's ``forward`` calls the Function, so
every gradient the harness takes of it runs the hand-written code. The
``reference`` is the same math in unfused torch ops: the harness compares the
Function's gradients with the reference's autograd gradients, and both with
finite differences, gradcheck and the Taylor test.

The Functions use the ``setup_context`` style (a ``forward`` without ``ctx``
plus ``setup_context``) so that they also work under torch.func transforms;
``generate_vmap_rule = True`` lets torch.func.vmap batch them (the
finite-difference oracle uses it).

To write your own: copy a block, replace forward/backward with your kernel's,
keep the unfused math as the reference, and run
``pytest specs/custom_functions.py``.
"""

import math

import torch
from torch.nn import functional as F

from harness import Input, Spec

# --- fused sigmoid(x) * y (a gated unit) --------------------------------------


class SigmoidMul(torch.autograd.Function):
    """z = sigmoid(x) * y in one pass. The backward needs s (1 - s); it takes
    1 - s as sigmoid(-x), which keeps its digits where s rounds to nearly 1."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, y):
        return torch.sigmoid(x) * y

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y = inputs
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x, y)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * y * s * torch.sigmoid(-x), grad * s

    @staticmethod
    def jvp(ctx, x_t, y_t):
        x, y = ctx.saved_tensors
        s = torch.sigmoid(x)
        return x_t * y * s * torch.sigmoid(-x) + y_t * s


sigmoid_mul = Spec(
    forward=lambda x, y: SigmoidMul.apply(x, y),
    inputs={"x": Input(("n",)), "y": Input(("n",))},
    # The reference runs in float64 and rounds its output: torch.sigmoid's own float32
    # backward loses digits where s is near 1, and a reference must not be less exact
    # than the kernel it judges.
    reference=lambda x, y: (torch.sigmoid(x.double()) * y.double()).to(x.dtype),
    doc="fused sigmoid(x) * y: dx = g y s (1 - s), dy = g s with s = sigmoid(x)",
    examples=[{"x": [0.0], "y": [2.0], "expected": {"x": [0.5], "y": [0.5]}}],
)


# --- softplus with a stable forward and backward ------------------------------


class StableSoftplus(torch.autograd.Function):
    """log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)): no overflow for
    large x; its derivative sigmoid(x) is computed without exp(x) either."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x_t * torch.sigmoid(x)


stable_softplus = Spec(
    forward=lambda x: StableSoftplus.apply(x),
    inputs={"x": Input(("n",), low=-30.0, high=30.0)},
    reference=lambda x: F.softplus(x, threshold=1000.0),
    doc="softplus as max(x, 0) + log1p(exp(-|x|)), smooth although built from kinked "
        "pieces; d/dx = sigmoid(x): 1/2 at 0, 3/4 at log 3",
    examples=[{"x": [0.0, math.log(3.0)], "expected": {"x": [0.5, 0.75]}}],
)


# --- fused linear + bias + ReLU -------------------------------------------------


class LinearBiasReLU(torch.autograd.Function):
    """y = relu(x W^T + b); the backward masks the cotangent where y > 0."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias):
        return torch.relu(x @ weight.mT + bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight, output)

    @staticmethod
    def backward(ctx, grad):
        x, weight, output = ctx.saved_tensors
        masked = grad * (output > 0)
        return masked @ weight, masked.mT @ x, masked.sum(0)


linear_bias_relu = Spec(
    forward=lambda x, weight, bias: LinearBiasReLU.apply(x, weight, bias),
    inputs={
        "x": Input(("N", "I")),
        "weight": Input(("O", "I")),
        "bias": Input(("O",), kinks=[0.0]),
    },
    reference=lambda x, weight, bias: torch.relu(F.linear(x, weight, bias)),
    dims={"N": (1, 4), "I": (1, 4), "O": (1, 4)},
    doc="relu(x W^T + b), kinked where a pre-activation is 0. Where x = 0 or W = 0 it is "
        "relu(b), kinked at b = 0: the bias declares that kink (kinks = [0.0]); an example "
        "that lands on a kink elsewhere is found by the probe and discarded",
    examples=[{
        "x": [[1.0, 2.0]],
        "weight": [[1.0, 1.0], [1.0, -1.0]],
        "bias": [0.5, -0.5],
        "expected": {"x": [[1.0, 1.0]], "weight": [[1.0, 2.0], [0.0, 0.0]],
                     "bias": [1.0, 0.0]},
    }],
)


# --- row-wise softmax -------------------------------------------------------------


class RowSoftmax(torch.autograd.Function):
    """softmax over the last dim, the backward written with the output only:
    dx = y * (g - sum(g * y))."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        shifted = x - x.amax(dim=-1, keepdim=True)
        e = shifted.exp()
        return e / e.sum(dim=-1, keepdim=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(dim=-1, keepdim=True))

    @staticmethod
    def jvp(ctx, x_t):
        (y,) = ctx.saved_tensors
        return y * (x_t - (x_t * y).sum(dim=-1, keepdim=True))


row_softmax = Spec(
    forward=lambda x: RowSoftmax.apply(x),
    inputs={"x": Input(("m", "n"))},
    reference=lambda x: torch.softmax(x, dim=-1),
    doc="row-wise softmax with a backward from the output alone, y (g - <g, y>); "
        "with a unit cotangent the gradient is 0 (every row sums to 1)",
    examples=[{"x": [[0.0, math.log(3.0)]], "expected": {"x": [[0.0, 0.0]]}}],
)


# --- GELU, tanh approximation -------------------------------------------------


_GELU_C = math.sqrt(2.0 / math.pi)


class GeluTanh(torch.autograd.Function):
    """0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2 / pi), and its derivative
    0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2) with t the tanh."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return 0.5 * x * (1 + torch.tanh(_GELU_C * (x + 0.044715 * x**3)))

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def _derivative(x):
        t = torch.tanh(_GELU_C * (x + 0.044715 * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * x * x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * GeluTanh._derivative(x)

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x_t * GeluTanh._derivative(x)


gelu_tanh = Spec(
    forward=lambda x: GeluTanh.apply(x),
    inputs={"x": Input(("n",), low=-3.0, high=3.0)},
    reference=lambda x: F.gelu(x, approximate="tanh"),
    doc="GELU's tanh approximation with a hand-derived derivative; 1/2 at 0. "
        "|x| <= 3 for the same float32 reason as the exact gelu in elementwise.toml",
    examples=[{"x": [0.0], "expected": {"x": [0.5]}}],
)


# --- RMSNorm ------------------------------------------------------------------


class RMSNorm(torch.autograd.Function):
    """y = x r w with r = 1 / sqrt(mean(x^2) + eps) over the last dim.
    dx = r (g w - x r^2 mean(g w x)), dw = sum over rows of g x r."""

    generate_vmap_rule = True
    eps = 1e-6

    @staticmethod
    def forward(x, weight):
        r = torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + RMSNorm.eps)
        return x * r * weight

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight = inputs
        r = torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + RMSNorm.eps)
        ctx.save_for_backward(x, weight, r)

    @staticmethod
    def backward(ctx, grad):
        x, weight, r = ctx.saved_tensors
        gw = grad * weight
        dx = r * (gw - x * r.square() * (gw * x).mean(dim=-1, keepdim=True))
        dweight = (grad * x * r).reshape(-1, x.shape[-1]).sum(0)
        return dx, dweight


rms_norm = Spec(
    forward=lambda x, weight: RMSNorm.apply(x, weight),
    inputs={"x": Input(("m", "n")), "weight": Input(("n",))},
    reference=lambda x, weight: x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6) * weight,
    doc="RMSNorm x / sqrt(mean(x^2) + eps) * w over the last dim, with a hand-written "
        "backward; with a unit cotangent dw = x / rms",
    examples=[{
        "x": [[3.0, 4.0]], "weight": [1.0, 1.0],
        # rms = sqrt(12.5); with a unit cotangent dw = x / rms
        "expected": {"weight": [3.0 / math.sqrt(12.5 + 1e-6), 4.0 / math.sqrt(12.5 + 1e-6)]},
    }],
)
