"""What a TOML formula may name: torch functions, tensor attributes and constants.

The compiler in :mod:`harness.load.formula` binds a formula's calls to ``FUNCTIONS`` and
nothing else; ``python -m harness formulas`` prints them (``describe``), and
docs/formulas.md is the reference with a note per function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["ATTRIBUTES", "ATTRIBUTES_IN_ORDER", "CONSTANTS", "FUNCTIONS", "eye_like"]


def eye_like(x: torch.Tensor) -> torch.Tensor:
    """The ``(n, n)`` identity with ``x``'s dtype and device; ``x``'s last two dims are n, n."""
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"eye_like needs a square matrix (or batch of them), got shape {x.shape}")
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


# Each name maps to the callable of that name in torch, torch.nn.functional or torch.linalg.
_TORCH = (
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cos", "cosh", "sin",
    "sinh", "tan", "tanh", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt",
    "rsqrt", "reciprocal", "square", "pow", "sign", "sgn", "erf", "erfc", "sigmoid", "relu",
    "clamp", "clip", "minimum", "maximum", "where", "heaviside", "floor", "ceil", "round", "trunc",
    "frac", "xlogy", "lerp", "hypot", "sum", "mean", "prod", "var", "std", "logsumexp", "cumsum",
    "cumprod", "amax", "amin", "max", "min", "sort", "numel", "outer", "dot", "inner", "matmul",
    "mm", "bmm", "mv", "einsum", "kron", "trace", "logdet", "diag", "diagonal", "diag_embed",
    "tril", "triu", "transpose", "permute", "reshape", "flatten", "squeeze", "unsqueeze",
    "broadcast_to", "cat", "stack", "flip", "roll", "zeros_like", "ones_like", "full_like",
    "topk", "gather", "index_select", "masked_fill", "index_add", "scatter_add", "conj", "real",
    "imag", "angle", "split", "unbind"
)
_NN = (
    "logsigmoid", "softplus", "gelu", "silu", "elu", "leaky_relu", "hardtanh", "softmax",
    "log_softmax", "mse_loss", "cross_entropy", "layer_norm", "linear", "embedding", "one_hot"
)
_LINALG = (
    "norm", "vector_norm", "matrix_norm", "cross", "inv", "det", "slogdet", "solve", "cholesky",
    "pinv"
)
FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType({
    **{name: getattr(torch, name) for name in _TORCH},
    **{name: getattr(F, name) for name in _NN},
    **{name: getattr(torch.linalg, name) for name in _LINALG},
    "expand": torch.broadcast_to,
    "eye_like": eye_like,
})
ATTRIBUTES_IN_ORDER = ("T", "mT", "H", "mH", "shape", "ndim", "values", "indices")
ATTRIBUTES: frozenset[str] = frozenset(ATTRIBUTES_IN_ORDER)
CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e, "inf": math.inf})


def describe(width: int = 88) -> str:
    """The whitelist as ``python -m harness formulas`` prints it: the names a formula may
    use, grouped by where each comes from.

    >>> text = describe()
    >>> "Constants: pi, e, inf" in text, "  torch.linalg: " in text
    (True, True)
    """
    import textwrap

    def block(title: str, names) -> str:
        return textwrap.fill(", ".join(names), width=width, initial_indent=f"  {title}: ",
                             subsequent_indent="    ")

    return "\n".join([
        textwrap.fill(
            "A formula in a TOML spec file is one Python expression. It may name the spec's "
            "inputs and dims, `grad` and `result` (in backward.<input>), the tangents "
            "`<input>_t` (in jvp), and the constants, attributes and functions below; it may "
            "use operators (+ - * / // % ** @, comparisons), numbers, tuples, lists, "
            "indexing and slicing, and short strings as arguments. Nothing else: no other "
            "names or attributes, no method calls, builtins, lambdas or comprehensions, no "
            "name with an underscore prefix, no out= keyword.", width=width),
        "",
        f"Constants: {', '.join(CONSTANTS)}",
        f"Attributes: {', '.join(ATTRIBUTES_IN_ORDER)}",
        "Functions, each the callable of that name (torch.<name>(...) means the same):",
        block("torch", _TORCH),
        block("torch.nn.functional", _NN),
        block("torch.linalg", _LINALG),
        block("others", [f"{name} ({_qualified(FUNCTIONS[name])})" for name in FUNCTIONS
                         if name not in (*_TORCH, *_NN, *_LINALG)]),
        "",
        textwrap.fill("Notes per function (which return (values, indices), which need dim=): "
                      "docs/formulas.md in the pytest-gradharness sources.", width=width),
    ])


def _qualified(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "torch"
    module = "torch" if module.startswith("torch._") else module
    return f"{module}.{function.__name__}"
