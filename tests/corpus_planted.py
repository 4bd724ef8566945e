"""Specs with a PLANTED BUG: each one must fail the checks it names.

Every entry is a ``Planted``: a spec whose gradient (or tangent) is wrong on
purpose, the checks that must catch it, the input whose gradient is wrong (the
first line of the failure message names it) and the dtypes it is caught in.

Kinds of bug:

- a spec-level ``backward`` formula is wrong while the forward is plain torch:
  only ``analytic`` can see it (autograd, finite differences and gradcheck all
  agree with the forward);
- a custom ``torch.autograd.Function`` has a wrong ``backward`` and the spec has
  no formula: autograd itself is wrong, so ``finite_difference``, ``gradcheck``
  and ``taylor`` (and ``reference``, where the spec has one) catch it;
- a wrong double backward (``gradgradcheck``), a wrong ``jvp`` staticmethod or a
  wrong spec-level ``jvp=`` formula (``forward_mode``).

Some bugs show only for some shapes (a dim above 1, an index past a tile
boundary) or some values (negative inputs, a saturated range, a branch above a
threshold): the dims and domains are wide enough for Hypothesis to reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd import Function

from harness import CHECKS, Input, Spec
from harness.registry import REAL_PRECISION

BOTH = ("float64", "float32")
FLOAT64 = ("float64",)
FLOAT32 = ("float32",)
ORACLE = frozenset({"finite_difference", "gradcheck", "taylor"})  # catch a wrong autograd


@dataclass(frozen=True)
class Planted:
    """A spec with a planted bug and what must catch it."""

    spec: Spec
    catches: frozenset[str]
    input: str | None  # the input whose gradient is wrong; None: the output tangent is
    bug: str
    dtypes: tuple[str, ...] = BOTH
    fault: bool = False  # caught as "The spec's code failed" (a gradient of the wrong shape)
    float64_only: frozenset[str] = frozenset()  # checks too coarse to see it in float32

    @property
    def name(self) -> str:
        return self.spec.name

    def checks(self, dtype: str) -> list[str]:
        """The checks that must fail in ``dtype`` (float64-only checks drop out elsewhere)."""
        if dtype not in self.dtypes:
            return []
        precision = REAL_PRECISION.get(dtype, dtype)
        catches = self.catches if precision == "float64" else self.catches - self.float64_only
        return [c for c in CHECKS if c in catches
                and not (CHECKS[c].float64_only and precision != "float64")]


def vector(low: float = -10.0, high: float = 10.0, dim: str = "n", **options) -> Input:
    return Input((dim,), low=low, high=high, **options)


# ---------------------------------------------------------------------------------------------
# Custom autograd.Functions with a planted bug (a fresh class per entry, so each is named)
# ---------------------------------------------------------------------------------------------


def elementwise(name: str, f, df, jvp=None):
    """A forward ``x -> Function.apply(x)`` for y = f(x) elementwise, backward ``df(x, grad)``.

    With ``jvp`` (``jvp(x, x_t)``) the Function supports forward-mode AD.
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        if jvp is not None:
            ctx.save_for_forward(x)
        return f(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return df(x, grad)

    body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    if jvp is not None:
        def forward_tangent(ctx, x_t):
            (x,) = ctx.saved_tensors
            return jvp(x, x_t)

        body["jvp"] = staticmethod(forward_tangent)
    function = type(name, (Function,), body)
    return lambda x: function.apply(x)


class SquareMatmulTransposed(Function):
    """a @ b with the gradient of ``a`` using b, not b^T (right only for symmetric b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b, a.mT @ grad


class AddRowWrongAxis(Function):
    """x (n, n) + b (n,): b broadcasts down the rows, but its gradient sums along them."""

    @staticmethod
    def forward(ctx, x, b):
        return x + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad.sum(1)


class ScaleFirstBatchOnly(Function):
    """x (B, m) * w (m,): the gradient of ``w`` takes batch element 0 only."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad * w, (grad * x)[0]


class SoftmaxMissingTerm(Function):
    """softmax over the last dim; backward forgets the -(grad . s) s term."""

    @staticmethod
    def forward(ctx, x):
        s = torch.softmax(x, -1)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return s * grad


TILE = 4


def _tiled_cos(grad, x):
    """A tiled backward of sin: the second and later tiles read x shifted by one element."""
    out = grad * torch.cos(x)
    n = x.shape[-1]
    if n > TILE:
        out[..., TILE:] = grad[..., TILE:] * torch.cos(x[..., TILE - 1 : n - 1])
    return out


class StdMeanInBfloat16(Function):
    """std(x) whose float32 backward takes the mean in bfloat16, as a careless fused
    kernel might: right in float64, wrong by ~1e-2 relative in float32."""

    @staticmethod
    def forward(ctx, x):
        result = torch.std(x)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        x, result = ctx.saved_tensors
        low = torch.bfloat16 if x.dtype == torch.float32 else x.dtype
        mean = x.to(low).mean().to(x.dtype)
        return grad * (x - mean) / ((x.numel() - 1) * result)


class SquareDetachedBackward(Function):
    """x^2 whose backward detaches x: first order right, second order lost."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x.detach()


class CosWrongBackward(Function):
    """cos(x) with backward +sin(x) grad: used inside a backward, so a double-backward bug."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sin(x)


class SinWrongDoubleBackward(Function):
    """sin(x): backward right (grad * cos x), but its cos has a wrong backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * CosWrongBackward.apply(x)


def _layer_norm(x, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _layer_norm_missing_term(grad, x, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    sigma = torch.sqrt((x - mean).square().mean(-1, keepdim=True) + eps)
    # right: (grad - mean(grad) - xhat * mean(grad * xhat)) / sigma
    return (grad - grad.mean(-1, keepdim=True)) / sigma


def _tiled_sin_formula(grad, x):
    return _tiled_cos(grad, x)


def _softmax_missing_term(grad, result):
    return result * grad  # right: result * (grad - (grad * result).sum(-1, keepdim=True))


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------

ANALYTIC = frozenset({"analytic"})

PLANTED: list[Planted] = [
    # --- wrong backward formulas: only the analytic check sees them ------------------------
    Planted(Spec(
        name="sin_sign_error", forward=lambda x: torch.sin(x), inputs={"x": vector()},
        backward={"x": lambda grad, x: -grad * torch.cos(x)},
    ), ANALYTIC, "x", "sign error: -cos instead of cos"),
    Planted(Spec(
        name="square_factor_error", forward=lambda x: x**2, inputs={"x": vector()},
        backward={"x": lambda grad, x: grad * x},
    ), ANALYTIC, "x", "factor error: x instead of 2x"),
    Planted(Spec(
        name="sqrt_missing_half", forward=lambda x: torch.sqrt(x),
        inputs={"x": vector(0.125, 10.0)},
        backward={"x": lambda grad, x: grad / torch.sqrt(x)},
    ), ANALYTIC, "x", "factor error: 1/sqrt(x) instead of 1/(2 sqrt(x))"),
    Planted(Spec(
        name="matmul_transpose", forward=lambda A, B: A @ B,
        inputs={"A": Input(("n", "k")), "B": Input(("k", "k"))}, dims={"n": (1, 3), "k": (1, 4)},
        backward={"A": lambda grad, B: grad @ B, "B": lambda grad, A: A.mT @ grad},
    ), ANALYTIC, "A", "transpose: grad @ B instead of grad @ B^T (shows for k > 1)"),
    Planted(Spec(
        name="matvec_outer_transposed", forward=lambda W, x: W @ x,
        inputs={"W": Input(("n", "n")), "x": vector()},
        backward={"W": lambda grad, x: torch.outer(x, grad),
                  "x": lambda grad, W: W.mT @ grad},
    ), ANALYTIC, "W", "transpose: outer(x, grad) instead of outer(grad, x)"),
    Planted(Spec(
        name="cumsum_not_reversed", forward=lambda x: torch.cumsum(x, 0),
        inputs={"x": vector()},
        backward={"x": lambda grad: torch.cumsum(grad, 0)},
    ), ANALYTIC, "x", "cumsum's adjoint is a reversed cumsum; this one is not reversed"),
    Planted(Spec(
        name="broadcast_wrong_axis", forward=lambda x, b: x + b,
        inputs={"x": Input(("n", "n")), "b": vector()},
        backward={"x": lambda grad: grad, "b": lambda grad: grad.sum(1)},
    ), ANALYTIC, "b", "broadcast: sums grad along dim 1, b broadcasts along dim 0 (same shape)"),
    Planted(Spec(
        name="broadcast_not_reduced", forward=lambda x, b: x * b,
        inputs={"x": Input(("n", "m")), "b": Input((1, "m"))}, dims={"n": (1, 4)},
        backward={"x": lambda grad, b: grad * b, "b": lambda grad, x: grad * x},
    ), ANALYTIC, "b", "broadcast: grad of b not summed over rows (wrong shape for n > 1)",
        fault=True),
    Planted(Spec(
        name="batched_matmul_first_batch_only", forward=lambda x, W: x @ W,
        inputs={"x": Input(("B", "n", "k")), "W": Input(("k", "m"))}, dims={"B": (1, 4)},
        backward={"x": lambda grad, W: grad @ W.mT, "W": lambda grad, x: (x.mT @ grad)[0]},
    ), ANALYTIC, "W", "batch: grad of W from batch element 0 only (shows for B > 1)"),
    Planted(Spec(
        name="batched_scale_mean_not_sum", forward=lambda x, w: x * w,
        inputs={"x": Input(("B", "m")), "w": Input(("m",))},
        backward={"x": lambda grad, w: grad * w, "w": lambda grad, x: (grad * x).mean(0)},
    ), ANALYTIC, "w", "batch: mean over the batch instead of sum (shows for B > 1)"),
    Planted(Spec(
        name="mse_missing_mean", forward=lambda x, y: ((x - y) ** 2).mean(),
        inputs={"x": vector(), "y": vector(requires_grad=False)},
        backward={"x": lambda grad, x, y: grad * 2 * (x - y)},
    ), ANALYTIC, "x", "reduction: forgets the 1/n of the mean (shows for n > 1)"),
    Planted(Spec(
        name="softmax_missing_term", forward=lambda x: torch.softmax(x, -1),
        inputs={"x": Input(("m", "n"))}, backward={"x": _softmax_missing_term},
    ), ANALYTIC, "x", "softmax: the -(grad . s) s term is missing"),
    Planted(Spec(
        name="layer_norm_missing_term", forward=_layer_norm, inputs={"x": Input(("m", "n"))},
        dims={"n": (2, 6)}, backward={"x": _layer_norm_missing_term},
    ), ANALYTIC, "x", "layer norm: the -xhat mean(grad xhat) term is missing"),
    Planted(Spec(
        name="tile_boundary", forward=lambda x: torch.sin(x), inputs={"x": vector()},
        dims={"n": (1, 8)}, backward={"x": _tiled_sin_formula},
    ), ANALYTIC, "x", f"tiles: elements past index {TILE} read x shifted by one (n > {TILE})"),
    Planted(Spec(
        name="negative_inputs", forward=lambda x: x * x.abs(), inputs={"x": vector()},
        backward={"x": lambda grad, x: grad * 2 * x},
    ), ANALYTIC, "x", "values: d(x|x|) = 2|x|, written 2x (wrong for x < 0)"),
    Planted(Spec(
        name="sigmoid_saturation_shortcut", forward=lambda x: torch.sigmoid(x),
        inputs={"x": vector()},
        backward={"x": lambda grad, result, x: torch.where(
            x.abs() > 4, torch.zeros_like(x), grad * result * (1 - result))},
    ), ANALYTIC, "x", "values: the gradient is taken as 0 in the saturated range |x| > 4"),
    Planted(Spec(
        name="threshold_branch", forward=lambda x: torch.where(x > 2, x**2, 4 * x - 4),
        inputs={"x": vector()},
        backward={"x": lambda grad, x: torch.where(x > 2, grad * x, 4 * grad)},
    ), ANALYTIC, "x", "values: the branch above x = 2 has x instead of 2x"),
    Planted(Spec(
        name="relative_error_1e-6", forward=lambda x: torch.exp(x), inputs={"x": vector(-5, 5)},
        backward={"x": lambda grad, x: grad * torch.exp(x) * (1 + 1e-6)},
    ), ANALYTIC, "x", "relative error 1e-6 (float64 only: below float32 noise)", FLOAT64),
    Planted(Spec(
        name="ignores_upstream_gradient", forward=lambda x: x**2, inputs={"x": vector()},
        backward={"x": lambda x: 2 * x},
    ), ANALYTIC, "x", "ignores grad: returns the gradient for grad = ones"),
    Planted(Spec(
        name="product_wrong_factor", forward=lambda x, y: x * y,
        inputs={"x": vector(), "y": vector()},
        backward={"x": lambda grad, y: grad * y, "y": lambda grad, y: grad * y},
    ), ANALYTIC, "y", "two inputs: grad of y uses y instead of x"),
    # --- custom Functions with a wrong backward: autograd is wrong, the oracles catch it ---
    Planted(Spec(
        name="fn_cube_sign_error",
        forward=elementwise("CubeSignError", lambda x: x**3, lambda x, g: -3 * x**2 * g),
        reference=lambda x: x**3, inputs={"x": vector()},
    ), ORACLE | {"reference"}, "x", "sign error in a Function's backward"),
    Planted(Spec(
        name="fn_exp_half",
        forward=elementwise("ExpHalf", torch.exp, lambda x, g: g * torch.exp(x) / 2),
        inputs={"x": vector(-5, 5)},
    ), ORACLE, "x", "factor error in a Function's backward"),
    Planted(Spec(
        name="fn_matmul_transpose", forward=lambda a, b: SquareMatmulTransposed.apply(a, b),
        inputs={"a": Input(("n", "k")), "b": Input(("k", "k"))}, dims={"n": (1, 3), "k": (1, 4)},
    ), ORACLE, "a", "transpose in a Function's backward (shows for k > 1)"),
    Planted(Spec(
        name="fn_broadcast_wrong_axis", forward=lambda x, b: AddRowWrongAxis.apply(x, b),
        inputs={"x": Input(("n", "n")), "b": vector()},
    ), ORACLE, "b", "broadcast reduced along the wrong axis in a Function's backward"),
    Planted(Spec(
        name="fn_batch_first_only", forward=lambda x, w: ScaleFirstBatchOnly.apply(x, w),
        inputs={"x": Input(("B", "m")), "w": Input(("m",))}, dims={"B": (1, 4)},
    ), ORACLE, "w", "batch not reduced in a Function's backward (shows for B > 1)"),
    Planted(Spec(
        name="fn_softmax_missing_term", forward=lambda x: SoftmaxMissingTerm.apply(x),
        reference=lambda x: torch.softmax(x, -1), inputs={"x": Input(("m", "n"))},
        dims={"n": (2, 6)},
    ), ORACLE | {"reference"}, "x", "softmax term missing in a Function's backward"),
    Planted(Spec(
        name="fn_tile_boundary",
        forward=elementwise("TiledSin", torch.sin, lambda x, g: _tiled_cos(g, x)),
        inputs={"x": vector()}, dims={"n": (1, 8)},
    ), ORACLE, "x", f"tile boundary in a Function's backward (n > {TILE})"),
    Planted(Spec(
        name="fn_elu_negative",
        forward=elementwise("EluNegative", lambda x: torch.where(x > 0, x, torch.expm1(x)),
                            lambda x, g: g),
        inputs={"x": vector(-5, 5)},
    ), ORACLE, "x", "values: ELU's backward forgets exp(x) for x < 0"),
    Planted(Spec(
        name="fn_tanh_saturated",
        forward=elementwise("TanhSaturated", torch.tanh, lambda x, g: torch.where(
            x.abs() > 3, torch.zeros_like(x), g * (1 - torch.tanh(x) ** 2))),
        inputs={"x": vector(-6, 6)},
    ), ORACLE, "x", "values: tanh's gradient taken as 0 for |x| > 3",
        # float32 phi rounds at 1e-7 of tanh ~ 1: too coarse for Taylor to see 1e-3 slopes
        float64_only=frozenset({"taylor"})),
    Planted(Spec(
        name="fn_relative_error_1e-6",
        forward=elementwise("ExpRelative1e6", torch.exp,
                            lambda x, g: g * torch.exp(x) * (1 + 1e-6)),
        inputs={"x": vector(-5, 5)},
    ), frozenset({"finite_difference"}), "x", "relative error 1e-6 in a Function's backward",
        FLOAT64),
    Planted(Spec(
        name="fn_std_mean_in_bfloat16", forward=lambda x: StdMeanInBfloat16.apply(x),
        inputs={"x": vector(unique=True)}, dims={"n": (2, 8)},
    ), frozenset({"finite_difference"}), "x",
        "a float32-only bug: the backward's intermediate mean is taken in bfloat16 (the noise "
        "model simulates float32 rounding in float64, so it cannot excuse this)", FLOAT32),
    Planted(Spec(
        name="fn_ignores_upstream_gradient",
        forward=elementwise("SquareIgnoresGrad", lambda x: x**2, lambda x, g: 2 * x),
        inputs={"x": vector()},
    ), ORACLE, "x", "a Function's backward ignores grad_output"),
    Planted(Spec(
        name="fn_wrong_backward_right_jvp",
        forward=elementwise("SinBackwardWrong", torch.sin, lambda x, g: g * torch.sin(x),
                            jvp=lambda x, x_t: torch.cos(x) * x_t),
        inputs={"x": vector()},
    ), ORACLE | {"forward_mode"}, "x", "wrong backward, right jvp: the dot-product test sees it"),
    # --- wrong double backward: only gradgradcheck sees it ---------------------------------
    Planted(Spec(
        name="fn_double_backward_detached", forward=lambda x: SquareDetachedBackward.apply(x),
        inputs={"x": vector()}, twice_differentiable=True,
    ), frozenset({"gradgradcheck"}), None, "double backward: the backward detaches x", FLOAT64),
    Planted(Spec(
        name="fn_double_backward_sign", forward=lambda x: SinWrongDoubleBackward.apply(x),
        inputs={"x": vector()}, twice_differentiable=True,
    ), frozenset({"gradgradcheck"}), None, "double backward: d(cos)/dx = +sin", FLOAT64),
    # --- wrong forward-mode tangents --------------------------------------------------------
    Planted(Spec(
        name="fn_jvp_factor_error",
        forward=elementwise("ExpJvpTwice", torch.exp, lambda x, g: g * torch.exp(x),
                            jvp=lambda x, x_t: 2 * torch.exp(x) * x_t),
        inputs={"x": vector(-5, 5)},
    ), frozenset({"forward_mode"}), None, "a Function's jvp staticmethod is twice too large"),
    Planted(Spec(
        name="jvp_formula_sign_error", forward=lambda x: torch.sin(x), inputs={"x": vector()},
        jvp=lambda x, x_t: -torch.cos(x) * x_t,
    ), frozenset({"forward_mode"}), None, "the spec's jvp formula has the wrong sign"),
    Planted(Spec(
        name="jvp_formula_missing_tangent", forward=lambda x, y: x * y,
        inputs={"x": vector(), "y": vector()}, jvp=lambda x_t, y: x_t * y,
    ), frozenset({"forward_mode"}), None, "the spec's jvp formula forgets y's tangent"),
]

assert len({entry.name for entry in PLANTED}) == len(PLANTED), "spec names must be unique"
