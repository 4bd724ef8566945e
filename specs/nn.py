"""Neural-network building blocks: layers, losses, normalisation, convolution, attention.

Layers are ``Spec.from_module``: the module's parameters ("weight", "bias", or
dotted paths such as "hidden.weight" for submodules) become differentiable
inputs, generated in [-1, 1], and the module runs on them through
``torch.func.functional_call``. Every spec gives its backward in closed form,
the textbook backpropagation rule, as a Python callable: it receives ``grad``
(shaped like the output), ``result``, the inputs and the dims by keyword.
Parameter names with dots reach a callable through ``**params``.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from harness import Input, Spec

# --- Linear ---------------------------------------------------------------------

linear = Spec.from_module(
    nn.Linear(3, 2),
    inputs={"x": Input(("N", 3))},
    backward={
        "x": lambda grad, weight: grad @ weight,
        "weight": lambda grad, x: grad.mT @ x,
        "bias": lambda grad: grad.sum(0),
    },
    doc="nn.Linear(3, 2), y = x W^T + b: dx = G W, dW = G^T x, db = G summed over the batch",
    examples=[{
        "x": [[1.0, 2.0, 3.0]],
        "weight": [[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]],
        "bias": [0.0, 1.0],
        "expected": {"x": [[1.5, 0.5, -0.5]], "weight": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
                     "bias": [1.0, 1.0]},
    }],
)


# --- a two-layer perceptron ---------------------------------------------------------


class TwoLayerPerceptron(nn.Module):
    def __init__(self, inputs: int, hidden: int, outputs: int):
        super().__init__()
        self.hidden = nn.Linear(inputs, hidden)
        self.out = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.hidden(x)))


def _mlp_preactivation(x, params):
    return x @ params["hidden.weight"].mT + params["hidden.bias"]


def _mlp_hidden(x, params):
    return F.silu(_mlp_preactivation(x, params))


def _mlp_delta(grad, x, params):
    """The cotangent at the hidden pre-activation z: (G W2) * silu'(z),
    silu'(z) = s (1 + z (1 - s)) with s = sigmoid(z)."""
    z = _mlp_preactivation(x, params)
    s = torch.sigmoid(z)
    return (grad @ params["out.weight"]) * s * (1 + z * (1 - s))


mlp = Spec.from_module(
    TwoLayerPerceptron(3, 4, 2),
    inputs={"x": Input(("N", 3), requires_grad=False)},
    backward={
        "out.weight": lambda grad, x, **params: grad.mT @ _mlp_hidden(x, params),
        "out.bias": lambda grad: grad.sum(0),
        "hidden.weight": lambda grad, x, **params: _mlp_delta(grad, x, params).mT @ x,
        "hidden.bias": lambda grad, x, **params: _mlp_delta(grad, x, params).sum(0),
    },
    doc="Linear(3, 4) -> SiLU -> Linear(4, 2), backpropagation by hand: the output "
        "layer's gradients use the hidden activations h = silu(z), the hidden layer's "
        "use delta = (G W2) * silu'(z)",
    examples=[{
        # hidden layer 0, so z = 0, h = 0 and silu'(0) = 1/2: delta = G W2 / 2
        "x": [[1.0, 2.0, 3.0]],
        "hidden.weight": [[0.0] * 3] * 4, "hidden.bias": [0.0] * 4,
        "out.weight": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], "out.bias": [0.0, 0.0],
        "expected": {
            "out.bias": [1.0, 1.0], "out.weight": [[0.0] * 4] * 2,
            "hidden.weight": [[0.5, 1.0, 1.5], [0.5, 1.0, 1.5], [0.0] * 3, [0.0] * 3],
            "hidden.bias": [0.5, 0.5, 0.0, 0.0],
        },
    }],
)


# --- losses ---------------------------------------------------------------------------

mse_loss = Spec(
    forward=lambda prediction, target: nn.MSELoss()(prediction, target),
    inputs={"prediction": Input(("N", "D")), "target": Input(("N", "D"))},
    backward={
        "prediction": lambda grad, prediction, target, N, D: grad * 2 * (prediction - target)
        / (N * D),
        "target": lambda grad, prediction, target, N, D: -grad * 2 * (prediction - target)
        / (N * D),
    },
    doc="nn.MSELoss (mean reduction): d/dp mean((p - t)^2) = 2 (p - t) / numel",
    examples=[{
        "prediction": [[1.0, 2.0]], "target": [[0.0, 0.0]],
        "expected": {"prediction": [[1.0, 2.0]], "target": [[-1.0, -2.0]]},
    }],
)


def _classes(scores: torch.Tensor) -> torch.Tensor:
    """Integer class targets, derived deterministically from a float input."""
    return scores.argmax(dim=1)


cross_entropy = Spec(
    forward=lambda logits, scores: nn.CrossEntropyLoss()(logits, _classes(scores)),
    inputs={
        "logits": Input(("N", "C"), low=-5.0, high=5.0),
        "scores": Input(("N", "C"), requires_grad=False),
    },
    backward={
        "logits": lambda grad, logits, scores, N, C: grad
        * (F.softmax(logits, dim=1) - F.one_hot(_classes(scores), C).to(logits.dtype)) / N,
    },
    dims={"N": (1, 4), "C": (2, 6)},
    doc="nn.CrossEntropyLoss with class targets: d/dz = (softmax(z) - onehot(y)) / N. "
        "The targets are integers, so they come from a non-differentiable float input "
        "('scores'), as the argmax of each row",
    examples=[{
        "logits": [[0.0, 0.0, 0.0]], "scores": [[1.0, 0.0, 0.0]],
        "expected": {"logits": [[-2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]]},
    }],
)


# --- softmax and log-softmax -----------------------------------------------------------

softmax = Spec(
    forward=lambda x: nn.Softmax(dim=-1)(x),
    inputs={"x": Input(("m", "n"))},
    backward={"x": lambda grad, result: result * (grad - (grad * result).sum(-1, keepdim=True))},
    jvp=lambda x_t, result: result * (x_t - (x_t * result).sum(-1, keepdim=True)),
    doc="softmax over the last dim: dx = y (g - <g, y>). With a unit cotangent the "
        "gradient is 0, since every row sums to 1",
    examples=[{"x": [[0.0, math.log(3.0)]], "expected": {"x": [[0.0, 0.0]]}}],
)

log_softmax = Spec(
    forward=lambda x: nn.LogSoftmax(dim=-1)(x),
    inputs={"x": Input(("m", "n"))},
    backward={"x": lambda grad, result: grad - result.exp() * grad.sum(-1, keepdim=True)},
    doc="log-softmax over the last dim: dx = g - softmax(x) sum(g); "
        "[1/2, -1/2] at x = [0, log 3] with a unit cotangent",
    examples=[{"x": [[0.0, math.log(3.0)]], "expected": {"x": [[0.5, -0.5]]}}],
)


# --- layer norm ----------------------------------------------------------------------------

_LN_EPS = 1e-5


def _normalised(x):
    mean = x.mean(-1, keepdim=True)
    rstd = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + _LN_EPS)
    return (x - mean) * rstd, rstd


def _layer_norm_dx(grad, x, weight):
    xhat, rstd = _normalised(x)
    g = grad * weight
    return rstd * (g - g.mean(-1, keepdim=True) - xhat * (g * xhat).mean(-1, keepdim=True))


layer_norm = Spec.from_module(
    nn.LayerNorm(4, eps=_LN_EPS),
    inputs={"x": Input(("N", 4), unique=True)},
    backward={
        "x": _layer_norm_dx,
        "weight": lambda grad, x: (grad * _normalised(x)[0]).sum(0),
        "bias": lambda grad: grad.sum(0),
    },
    doc="nn.LayerNorm(4): with xhat = (x - mean) / sqrt(var + eps) and g = G w, "
        "dx = (g - mean(g) - xhat mean(g xhat)) / sqrt(var + eps), dw = sum G xhat, "
        "db = sum G. A row of equal values (var = 0) makes the gradient 1/sqrt(eps) "
        "steep, too steep to judge numerically, so the inputs are unique",
    examples=[{
        "x": [[1.0, 2.0, 3.0, 4.0]], "weight": [1.0, 1.0, 1.0, 1.0], "bias": [0.0] * 4,
        # unit cotangent: dx = 0 (mean(xhat) = 0), dw = xhat, db = 1
        "expected": {
            "x": [[0.0] * 4],
            "weight": [(v - 2.5) / math.sqrt(1.25 + _LN_EPS) for v in (1.0, 2.0, 3.0, 4.0)],
            "bias": [1.0] * 4,
        },
    }],
)


# --- convolutions -------------------------------------------------------------------------

conv1d = Spec.from_module(
    nn.Conv1d(2, 3, kernel_size=3),
    inputs={"x": Input(("N", 2, "L"))},
    backward={
        # the input's gradient is the transposed convolution of the cotangent
        "x": lambda grad, weight: F.conv_transpose1d(grad, weight),
        # dW[o, i, k] = sum over batch and positions of G[n, o, l] x[n, i, l + k]
        "weight": lambda grad, x: torch.einsum("nol,nilk->oik", grad, x.unfold(2, 3, 1)),
        "bias": lambda grad: grad.sum((0, 2)),
    },
    dims={"N": (1, 3), "L": (3, 8)},
    doc="nn.Conv1d(2, 3, kernel_size=3): dx is the transposed convolution of G with W, "
        "dW correlates G with x's windows, db sums G over batch and positions",
    examples=[{
        "x": [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]],
        "weight": [[[1.0] * 3] * 2] * 3, "bias": [0.0] * 3,
        "expected": {"x": [[[3.0] * 3] * 2], "weight": [[[1.0] * 3] * 2] * 3,
                     "bias": [1.0] * 3},
    }],
)

conv2d = Spec.from_module(
    nn.Conv2d(2, 2, kernel_size=2),
    inputs={"x": Input(("N", 2, "H", "W"))},
    backward={
        "x": lambda grad, weight: F.conv_transpose2d(grad, weight),
        "weight": lambda grad, x: torch.einsum(
            "nohw,nihwab->oiab", grad, x.unfold(2, 2, 1).unfold(3, 2, 1)),
        "bias": lambda grad: grad.sum((0, 2, 3)),
    },
    dims={"N": (1, 2), "H": (2, 5), "W": (2, 5)},
    doc="nn.Conv2d(2, 2, kernel_size=2): the same rules as conv1d over 2-D windows",
    examples=[{
        "x": [[[[1.0, 1.0], [1.0, 1.0]]] * 2],
        "weight": [[[[1.0, 1.0], [1.0, 1.0]]] * 2] * 2, "bias": [0.0, 0.0],
        "expected": {"x": [[[[2.0, 2.0], [2.0, 2.0]]] * 2],
                     "weight": [[[[1.0, 1.0], [1.0, 1.0]]] * 2] * 2, "bias": [1.0, 1.0]},
    }],
)


# --- scaled dot-product attention ---------------------------------------------------------


def _attention_parts(grad, q, k, v):
    """P = softmax(q k^T / sqrt(d)), dS (the cotangent of the scores) and 1 / sqrt(d)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.mT * scale, dim=-1)
    dp = grad @ v.mT
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    return p, ds, scale


def _attention_dq(grad, q, k, v):
    _, ds, scale = _attention_parts(grad, q, k, v)
    return ds @ k * scale


def _attention_dk(grad, q, k, v):
    _, ds, scale = _attention_parts(grad, q, k, v)
    return ds.mT @ q * scale


def _attention_dv(grad, q, k, v):
    p, _, _ = _attention_parts(grad, q, k, v)
    return p.mT @ grad


attention = Spec(
    forward=lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    inputs={
        "q": Input(("B", "L", "D"), low=-2.0, high=2.0),
        "k": Input(("B", "S", "D"), low=-2.0, high=2.0, unique=True),
        "v": Input(("B", "S", "E"), low=-2.0, high=2.0, unique=True),
    },
    backward={
        "q": _attention_dq,
        "k": _attention_dk,
        "v": _attention_dv,
    },
    dims={"B": (1, 2), "L": (1, 4), "S": (1, 4), "D": (1, 4), "E": (1, 4)},
    doc="softmax(q k^T / sqrt(d)) v: with P the attention weights, dv = P^T G; "
        "dS = P * (G v^T - rowsum(P * G v^T)); dq = dS k / sqrt(d), dk = dS^T q / sqrt(d). "
        "k and v are unique: two equal rows make dq or dk cancel to exactly 0, where "
        "only rounding noise is left to compare",
    examples=[{
        # q = 0: uniform attention over two keys; d out / dq = -1 (see the doc's rules)
        "q": [[[0.0]]], "k": [[[1.0], [-1.0]]], "v": [[[1.0], [3.0]]],
        "expected": {"q": [[[-1.0]]], "k": [[[0.0], [0.0]]], "v": [[[0.5], [0.5]]]},
    }],
)
