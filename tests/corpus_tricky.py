"""RIGHT-but-tricky specs: every check that applies must pass them, in float64 and float32.

Each spec's gradient is right; what makes it tricky is the numerics: magnitudes
from 1e-3 to 1e8, declared kinks, ties kept apart by ``unique``, linear
functions (a Taylor remainder of exactly zero), gradients that are exactly
zero, large curvature, reductions over thousands of float32 elements, saturated
softmax and sigmoid, logsumexp of large inputs, ill-conditioned domains near a
pole, products with zeros, custom Functions and nn.Modules.

A false positive here (a right gradient reported wrong) is a harness bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd import Function

from harness import Input, Spec
from harness.registry import CHECK_NAMES


@dataclass(frozen=True)
class Tricky:
    """A right spec, and whether forward-mode AD is expected to be unavailable for it."""

    spec: Spec
    why: str
    no_forward_ad: bool = False  # a custom Function without a jvp staticmethod
    dtypes: tuple[str, ...] = ("float64", "float32")

    @property
    def name(self) -> str:
        return self.spec.name


def vector(low: float = -10.0, high: float = 10.0, dim: str = "n", **options) -> Input:
    return Input((dim,), low=low, high=high, **options)


# ---------------------------------------------------------------------------------------------
# Right custom Functions
# ---------------------------------------------------------------------------------------------


class Softmax(Function):
    """softmax over the last dim with the full backward and a jvp."""

    @staticmethod
    def forward(ctx, x):
        s = torch.softmax(x, -1)
        ctx.save_for_backward(s)
        ctx.save_for_forward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return s * (grad - (grad * s).sum(-1, keepdim=True))

    @staticmethod
    def jvp(ctx, x_t):
        (s,) = ctx.saved_tensors
        return s * (x_t - (x_t * s).sum(-1, keepdim=True))


class Cube(Function):
    """x^3 with a differentiable backward (twice differentiable), no jvp."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class LogSumExp(Function):
    """logsumexp over the last dim, stable: backward is softmax * grad."""

    @staticmethod
    def forward(ctx, x):
        result = torch.logsumexp(x, -1)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        x, result = ctx.saved_tensors
        return grad.unsqueeze(-1) * torch.exp(x - result.unsqueeze(-1))


# ---------------------------------------------------------------------------------------------
# Right formulas
# ---------------------------------------------------------------------------------------------


def _layer_norm(x, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _layer_norm_backward(grad, x, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    sigma = torch.sqrt((x - mean).square().mean(-1, keepdim=True) + eps)
    xhat = (x - mean) / sigma
    return (grad - grad.mean(-1, keepdim=True)
            - xhat * (grad * xhat).mean(-1, keepdim=True)) / sigma


def _max_backward(grad, x):
    return grad * torch.nn.functional.one_hot(x.argmax(), x.numel()).to(x.dtype)


def _sort_backward(grad, x):
    order = torch.argsort(x)
    return torch.zeros_like(x).scatter(0, order, grad)


def _softmax_backward(grad, result):
    return result * (grad - (grad * result).sum(-1, keepdim=True))


def _softmax_backward_expanded(grad, result):
    """s g - s <g, s>: two order-one terms that cancel where s saturates."""
    return result * grad - result * (grad * result).sum(-1, keepdim=True)


def _logcosh(pred, target):
    return torch.log(torch.cosh(pred - target)).mean()


def _logcosh_backward(sign: float):
    return lambda grad, pred, target: sign * grad * torch.tanh(pred - target) / pred.numel()


class FusedSoftplus(Function):
    """softplus as a fused kernel would compute it: log1p(exp(x)), linear above 20."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 20, x, torch.log1p(torch.exp(x)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.where(x > 20, torch.ones_like(x), torch.sigmoid(x))


class _MLP(nn.Module):
    # Named layers, not nn.Sequential: Spec.from_module rejects the names "0.weight", ...
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


class _NormedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(torch.relu(self.linear(x)) + x)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------

TRICKY: list[Tricky] = [
    # --- magnitudes ---------------------------------------------------------------------------
    Tricky(Spec(
        name="square_huge", forward=lambda x: x**2, inputs={"x": vector(1e7, 1e8)},
        backward={"x": lambda grad, x: grad * 2 * x},
    ), "inputs in [1e7, 1e8], outputs near 1e16"),
    Tricky(Spec(
        name="cube_tiny", forward=lambda x: x**3, inputs={"x": vector(1e-3, 1e-2)},
        backward={"x": lambda grad, x: grad * 3 * x**2},
    ), "inputs in [1e-3, 1e-2], gradients near 1e-6"),
    Tricky(Spec(
        name="product_mixed_magnitudes", forward=lambda x, y: x * y,
        inputs={"x": vector(1e7, 1e8), "y": vector(1e-3, 1e-2)},
        backward={"x": lambda grad, y: grad * y, "y": lambda grad, x: grad * x},
    ), "one input near 1e8, the other near 1e-3"),
    Tricky(Spec(
        name="exp_wide_range", forward=lambda x: torch.exp(x), inputs={"x": vector(-40, 40)},
        backward={"x": lambda grad, result: grad * result},
    ), "gradients from 1e-18 to 1e17 in one tensor"),
    Tricky(Spec(
        name="sum_of_squares_huge", forward=lambda x: (x**2).sum(),
        inputs={"x": vector(-1e8, 1e8)}, dims={"n": (1, 512)},
        backward={"x": lambda grad, x: grad * 2 * x},
    ), "a reduction of values up to 1e16"),
    # --- kinks and ties -----------------------------------------------------------------------
    Tricky(Spec(
        name="abs_kink", forward=lambda x: x.abs(), inputs={"x": vector(kinks=(0.0,))},
        backward={"x": lambda grad, x: grad * torch.sign(x)},
    ), "abs: a declared kink at 0"),
    Tricky(Spec(
        name="relu_kink", forward=lambda x: torch.relu(x), inputs={"x": vector(kinks=(0.0,))},
        backward={"x": lambda grad, x: grad * (x > 0).to(x.dtype)},
    ), "relu: a declared kink at 0, zero gradient on half the domain"),
    Tricky(Spec(
        name="clamp_two_kinks", forward=lambda x: x.clamp(-1.0, 2.0),
        inputs={"x": vector(-3, 3, kinks=(-1.0, 2.0))},
        backward={"x": lambda grad, x: grad * ((x > -1) & (x < 2)).to(x.dtype)},
    ), "clamp: two declared kinks"),
    Tricky(Spec(
        name="max_unique", forward=lambda x: x.max(), inputs={"x": vector(unique=True)},
        dims={"n": (1, 100)}, backward={"x": _max_backward},
    ), "max: ties excluded by unique, up to 100 elements"),
    Tricky(Spec(
        name="sort_unique", forward=lambda x: torch.sort(x).values,
        inputs={"x": vector(unique=True)}, dims={"n": (1, 80)}, backward={"x": _sort_backward},
    ), "sort: ties excluded by unique"),
    # --- linear, zero gradient, curvature -------------------------------------------------------
    Tricky(Spec(
        name="linear", forward=lambda x, y: 3 * x - 2 * y + 1,
        inputs={"x": vector(), "y": vector()},
        backward={"x": lambda grad: 3 * grad, "y": lambda grad: -2 * grad},
        jvp=lambda x_t, y_t: 3 * x_t - 2 * y_t,
    ), "linear: the Taylor remainder is rounding only"),
    Tricky(Spec(
        name="cancelling_terms", forward=lambda a, b: 2 * a + b**2,
        inputs={"a": Input((), low=-20, high=20), "b": Input((), low=-4, high=4)},
        backward={"a": lambda grad: 2 * grad, "b": lambda grad, b: grad * 2 * b},
        examples=[{"a": -8.0000005, "b": 4.0}],
    ), "2a + b^2 with 2a close to -b^2: the float32 output rounds far above its size"),
    Tricky(Spec(
        name="mse_at_its_minimum",
        forward=lambda prediction, target: nn.functional.mse_loss(prediction, target),
        inputs={"prediction": Input(("N", "D")), "target": Input(("N", "D"))},
        backward={"prediction": lambda grad, prediction, target, N, D:
                  grad * 2 * (prediction - target) / (N * D),
                  "target": lambda grad, prediction, target, N, D:
                  grad * 2 * (target - prediction) / (N * D)},
        examples=[{"prediction": [[0.0, 1.0], [1.0, 0.0]], "target": [[0.0, 1.0], [1.0, 0.0]]},
                  {"prediction": [[3.0, 0.0, 0.0, 0.0, 0.0]],
                   "target": [[3.0, 0.0, 0.0, 0.0, 1e-5]]}],
    ), "prediction == target: a zero slope under curvature, x + h rounding in the steps, "
       "an output far smaller than its Jacobian"),
    Tricky(Spec(
        name="relu_kink_near_a_step",
        forward=lambda x, weight, bias: torch.relu(x @ weight.mT + bias),
        inputs={"x": Input(("N", "I")), "weight": Input(("O", "I")),
                "bias": Input(("O",), kinks=(0.0,))},
        dims={"N": (1, 4), "I": (1, 4), "O": (1, 4)},
        backward={"x": lambda grad, weight, result: (grad * (result > 0)) @ weight,
                  "weight": lambda grad, x, result: (grad * (result > 0)).mT @ x,
                  "bias": lambda grad, result: (grad * (result > 0)).sum(0)},
        examples=[{"x": [[0.0, 0.0, 0.0], [-3.4000000953674316, 7.93359375, 0.0]],
                   "weight": [[5.044086456298828, 1.8014699220657349, 0.0],
                              [0.0, 0.0, 0.0]],
                   "bias": [2.865234375, 0.20000000298023224]}],
    ), "a pre-activation 0.007 from relu's kink: the coarse oracle steps cross it, the "
       "finest does not (found by the stress run)"),
    Tricky(Spec(
        name="zero_gradient", forward=lambda x, y: torch.sin(y) + 0 * x,
        inputs={"x": vector(), "y": vector()},
        backward={"x": lambda grad: torch.zeros_like(grad), "y": lambda grad, y: grad * y.cos()},
    ), "the gradient of x is exactly zero"),
    Tricky(Spec(
        name="unused_input", forward=lambda x, y: torch.tanh(y),
        inputs={"x": vector(), "y": vector()},
    ), "x does not reach the output at all"),
    Tricky(Spec(
        name="sin_high_frequency", forward=lambda x: torch.sin(50 * x),
        inputs={"x": vector(-1, 1)}, backward={"x": lambda grad, x: grad * 50 * torch.cos(50 * x)},
    ), "large curvature: sin(50 x)"),
    # --- big float32 reductions -------------------------------------------------------------------
    Tricky(Spec(
        name="sum_4096_float32", forward=lambda x: (x**2).sum(), inputs={"x": vector()},
        dims={"n": (1, 4096)}, backward={"x": lambda grad, x: grad * 2 * x},
    ), "a sum of up to 4096 squares"),
    Tricky(Spec(
        name="variance_4096", forward=lambda x: x.var(), inputs={"x": vector()},
        dims={"n": (2, 4096)},
        backward={"x": lambda grad, x, n: grad * 2 * (x - x.mean()) / (n - 1)},
    ), "variance of up to 4096 values: cancellation in x - mean"),
    Tricky(Spec(
        name="matmul_long_inner", forward=lambda A, B: A @ B,
        inputs={"A": Input((4, "k"), low=-1, high=1), "B": Input(("k", 3), low=-1, high=1)},
        dims={"k": (1, 1024)},
        backward={"A": lambda grad, B: grad @ B.mT, "B": lambda grad, A: A.mT @ grad},
    ), "inner dimension up to 1024: 4096-element inputs"),
    Tricky(Spec(
        name="mean_4096_rows", forward=lambda x: x.mean(0),
        inputs={"x": Input(("n", 4), low=-100, high=100)}, dims={"n": (1, 1024)},
        backward={"x": lambda grad, x, n: grad.expand_as(x) / n},
    ), "mean over up to 1024 rows, broadcast gradient"),
    Tricky(Spec(
        name="std_near_ties", forward=lambda x: torch.std(x + 10),
        inputs={"x": vector(-0.05, 0.05, unique=True)}, dims={"n": (2, 8)},
        backward={"x": lambda grad, x, result, n: grad * (x - x.mean()) / ((n - 1) * result)},
    ), "std of values within 0.1 of 10: the float32 deviations from the mean cancel"),
    # --- softmax, logsumexp, saturation -------------------------------------------------------
    Tricky(Spec(
        name="softmax_saturated", forward=lambda x: torch.softmax(x, -1),
        inputs={"x": Input(("m", "n"), low=-100, high=100)}, backward={"x": _softmax_backward},
    ), "softmax of logits 200 apart: probabilities of 1 and 1e-87"),
    Tricky(Spec(
        name="logsumexp_large", forward=lambda x: torch.logsumexp(x, -1),
        inputs={"x": Input(("m", "n"), low=500, high=1000)},
        backward={"x": lambda grad, x, result: grad.unsqueeze(-1) * torch.exp(
            x - result.unsqueeze(-1))},
    ), "logsumexp of inputs up to 1000: exp overflows, the stable form does not"),
    Tricky(Spec(
        name="sigmoid_saturated", forward=lambda x: torch.sigmoid(x),
        inputs={"x": vector(-30, 30)},
        backward={"x": lambda grad, result: grad * result * (1 - result)},
    ), "sigmoid far into saturation: gradients near 1e-13"),
    Tricky(Spec(
        name="layer_norm", forward=_layer_norm, inputs={"x": Input(("m", "n"))},
        dims={"n": (2, 64)}, backward={"x": _layer_norm_backward},
    ), "layer norm, full backward"),
    Tricky(Spec(
        name="softmax_saturated_expanded", forward=lambda x: torch.softmax(x, -1),
        inputs={"x": Input(("m", "n"), low=-100, high=100)},
        backward={"x": _softmax_backward_expanded},
        examples=[{"x": [[100.0, -100.0, 50.0]]}, {"x": [[30.0, -30.0], [0.0, 60.0]]}],
    ), "softmax VJP written as s g - s <g, s>: where s saturates the gradient is made of "
       "order-one terms that cancel, and the two sources round differently"),
    Tricky(Spec(
        name="layer_norm_constant_row", forward=_layer_norm, inputs={"x": Input(("m", "n"))},
        dims={"n": (2, 16)}, backward={"x": _layer_norm_backward},
        examples=[{"x": [[3.0, 3.0, 3.0, 3.0]]}, {"x": [[-10.0, -9.96]]}],
    ), "layer norm of a constant row (the variance is 0, eps alone) and of a row whose mean "
       "cancels in float32"),
    Tricky(Spec(
        name="layer_norm_summed", forward=lambda x: _layer_norm(x).sum(),
        inputs={"x": Input(("m", "n"))}, dims={"n": (2, 16)},
        backward={"x": lambda grad, x: _layer_norm_backward(grad.expand_as(x), x)},
    ), "the sum of a layer norm's output is 0 whatever x: its gradient is rounding noise"),
    Tricky(Spec(
        name="layer_norm_against_torch", forward=_layer_norm, inputs={"x": Input(("m", "n"))},
        dims={"n": (2, 16)},
        reference=lambda x: nn.functional.layer_norm(x, x.shape[-1:], eps=1e-5),
        examples=[{"x": [[-10.0, -9.96]]}],
    ), "a hand-written layer norm against F.layer_norm: in float32 both round their mean "
       "(which cancels at [-10, -9.96]), each in its own way"),
    Tricky(Spec(
        name="fused_softplus_against_torch", forward=lambda x: FusedSoftplus.apply(x),
        inputs={"x": vector(-15, 15)}, reference=lambda x: nn.functional.softplus(x),
    ), "a fused softplus Function against F.softplus", no_forward_ad=True),
    Tricky(Spec(
        name="norm_inf", forward=lambda x: torch.linalg.vector_norm(x, ord=float("inf")),
        inputs={"x": Input(("n", "n"), unique=True)}, dims={"n": (1, 5)},
    ), "the max-norm: a selection, which simulated rounding must leave exact (it once made "
       "the gradient NaN)"),
    Tricky(Spec(
        name="conv1d_bias",
        forward=lambda x, weight, bias: nn.functional.conv1d(x, weight, bias),
        inputs={"x": Input(("N", 2, "L")), "weight": Input((2, 2, 3), low=-1, high=1),
                "bias": Input((2,), low=-1, high=1)},
        dims={"N": (1, 4), "L": (3, 16)},
    ), "the bias gradient sums N (L - 2) cotangent entries inside convolution_backward, "
       "whatever the inputs: only the op's own accumulation rounds it (a stress-run false "
       "positive in float32)"),
    Tricky(Spec(
        name="gelu_left_tail", forward=nn.functional.gelu, inputs={"x": vector(-3, -0.5)},
        backward={"x": lambda grad, x: grad * (0.5 * (1 + torch.erf(x / 2**0.5))
                                               + x * torch.exp(-x**2 / 2) / (2 * torch.pi)**0.5)},
        examples=[{"x": [-1.3992871046066284]}],
    ), "GELU below 0: its backward computes (1 + erf(x / sqrt 2)) / 2, which cancels, and "
       "x phi(x) cancels it again near -1.4 (a stress-run false positive in float32)"),
    # --- ill-conditioned domains -----------------------------------------------------------------
    Tricky(Spec(
        name="logcosh_near_zero", forward=_logcosh,
        inputs={"pred": Input(("N", "D")), "target": Input(("N", "D"))},
        dims={"N": (1, 4), "D": (1, 4)},
        backward={"pred": _logcosh_backward(1.0), "target": _logcosh_backward(-1.0)},
        examples=[{"pred": [[0.0]], "target": [[1e-05]]}],
    ), "log(cosh(d)) at d = 1e-5: cosh rounds at 1e-16 before log cancels it, so the "
       "forward rounds far above its own size (a user's spec, issue 12)"),
    Tricky(Spec(
        name="reciprocal_near_pole", forward=lambda x: 1 / x, inputs={"x": vector(1e-3, 1.0)},
        backward={"x": lambda grad, x: -grad / x**2},
    ), "1/x for x down to 1e-3: gradients up to 1e6"),
    Tricky(Spec(
        name="log_near_zero", forward=lambda x: torch.log(x), inputs={"x": vector(1e-3, 1e-2)},
        backward={"x": lambda grad, x: grad / x},
    ), "log x for x in [1e-3, 1e-2]"),
    Tricky(Spec(
        name="reciprocal_near_pole_exact_bounds", forward=lambda x: 1 / x,
        inputs={"x": vector(2.0**-10, 1.0)}, backward={"x": lambda grad, x: -grad / x**2},
    ), "1/x down to 2^-10 (bounds exact in float32)"),
    Tricky(Spec(
        name="log_near_zero_exact_bounds", forward=lambda x: torch.log(x),
        inputs={"x": vector(2.0**-10, 2.0**-7)}, backward={"x": lambda grad, x: grad / x},
    ), "log x for x in [2^-10, 2^-7] (bounds exact in float32)"),
    Tricky(Spec(
        name="index_fill_scalar_value",
        forward=lambda x, v, idx: torch.index_fill(x, 1, idx, v),
        inputs={"x": Input(("m", 4)), "v": Input(()),
                "idx": Input(("k",), dtype="int64", high=4)},
    ), "index_fill with a 0-d value tensor: torch.func.vmap fills every batch row with the "
       "last value (torch 2.13), so the batched oracle must notice and loop"),
    # --- products ----------------------------------------------------------------------------
    Tricky(Spec(
        name="prod", forward=lambda x: x.prod(), inputs={"x": vector(-3, 3)},
        dims={"n": (1, 8)},
    ), "product of up to 8 values, zeros included (autograd's special case)"),
    Tricky(Spec(
        name="cumprod", forward=lambda x: torch.cumprod(x, 0), inputs={"x": vector(-2, 2)},
        dims={"n": (1, 8)},
    ), "cumulative product, zeros included"),
    # --- custom Functions, modules, higher order ------------------------------------------------
    Tricky(Spec(
        name="fn_softmax_with_jvp", forward=lambda x: Softmax.apply(x),
        inputs={"x": Input(("m", "n"))}, reference=lambda x: torch.softmax(x, -1),
        # a forward taking ctx (no setup_context): torch.func.jvp cannot run it, so the
        # batched check's JVP under vmap cannot; the spec opts out, as a user's would
        checks=[c for c in CHECK_NAMES if c != "batched"],
    ), "a right custom Function with a jvp, against a reference"),
    Tricky(Spec(
        name="fn_cube_twice", forward=lambda x: Cube.apply(x), inputs={"x": vector()},
        reference=lambda x: x**3, twice_differentiable=True,
    ), "a right custom Function, twice differentiable", no_forward_ad=True),
    Tricky(Spec(
        name="fn_logsumexp_large", forward=lambda x: LogSumExp.apply(x),
        inputs={"x": Input(("m", "n"), low=500, high=1000)},
    ), "a right custom logsumexp on large inputs", no_forward_ad=True),
    Tricky(Spec.from_module(
        _MLP(), name="module_mlp", inputs={"x": Input(("n", 3), requires_grad=False)},
        forward=lambda model, x: model(x).square().mean(),
    ), "Linear, Tanh, Linear with a squared loss: parameters as inputs"),
    Tricky(Spec.from_module(
        _NormedHead(), name="module_layer_norm_residual",
        inputs={"x": Input(("n", 4), requires_grad=False, low=-3, high=3)},
        forward=lambda model, x: model(x),
    ), "Linear + ReLU + residual + LayerNorm module (relu kinks land inside the module)"),
    Tricky(Spec(
        name="jvp_formula", forward=lambda x, y: x * y + torch.sin(x),
        inputs={"x": vector(), "y": vector()},
        jvp=lambda x, y, x_t, y_t: x_t * y + x * y_t + torch.cos(x) * x_t,
        twice_differentiable=True,
    ), "a right spec-level jvp, twice differentiable"),
]

assert len({entry.name for entry in TRICKY}) == len(TRICKY), "spec names must be unique"
