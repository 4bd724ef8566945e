"""Rounding noise of a low-precision computation, simulated in float64.

Monte Carlo arithmetic: the float64 computation runs with every operation's
result moved by a random relative amount of up to one unit roundoff of the
simulated dtype. The spread of the answers over a few runs estimates what
rounding in that dtype does to it, intermediates included (the mean that std's
backward subtracts), and cannot excuse a low-precision kernel that is wrong
(it never runs one).

>>> import torch
>>> x = torch.tensor([-10.0, -9.96], dtype=torch.float64)
>>> with SimulatedRounding(torch.float32, torch.Generator().manual_seed(0)):
...     deviation = x - x.mean()
>>> bool((deviation - (x - x.mean())).abs().max() > 0)
True
"""

from __future__ import annotations

from functools import cache

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

# Pointwise ops whose result is exact (or a selection): moving it would not be
# rounding, and could break an algorithm that compares it with its input.
EXACT_POINTWISE = frozenset({
    "abs", "ceil", "clamp", "clamp_max", "clamp_min", "clip", "clone", "conj_physical",
    "copysign", "floor", "fmax", "fmin", "fmod", "frac", "frexp", "hardshrink", "hardtanh",
    "heaviside", "ldexp", "masked_fill", "max", "maximum", "min", "minimum", "nan_to_num",
    "neg", "nextafter", "relu", "relu6", "remainder", "round", "sgn", "sign", "signbit",
    "softshrink", "threshold", "threshold_backward", "trunc", "where",
})
# Ops without the pointwise tag whose result is rounded: sums, products,
# normalisations and their backward passes. Selections (max, sort, index) are
# left out on purpose.
ROUNDING = frozenset({
    "sum", "nansum", "mean", "prod", "std", "var", "std_mean", "var_mean", "norm",
    "linalg_vector_norm", "logsumexp", "cumsum", "cumprod", "logcumsumexp",
    "mm", "bmm", "addmm", "addmv", "addbmm", "baddbmm", "mv", "dot", "vdot",
    "_softmax", "_log_softmax", "_softmax_backward_data", "_log_softmax_backward_data",
    "native_layer_norm", "native_layer_norm_backward", "native_group_norm",
    "native_group_norm_backward", "native_batch_norm", "native_batch_norm_backward",
    "convolution", "convolution_backward", "_cdist_forward", "_cdist_backward",
    "mse_loss", "mse_loss_backward", "binary_cross_entropy",
    "binary_cross_entropy_backward", "smooth_l1_loss", "smooth_l1_loss_backward",
    "huber_loss", "huber_loss_backward",
})


@cache  # called for every op of every simulated run
def rounds(func) -> bool:
    """Whether an aten op's result is rounded (a view or an in-place result never is)."""
    if func.is_view or func._schema.is_mutable:
        return False  # it aliases another tensor, which moving it would move too
    name = func.overloadpacket.__name__
    if torch.Tag.pointwise in func.tags:
        return name not in EXACT_POINTWISE
    return name in ROUNDING


class SimulatedRounding(TorchDispatchMode):
    """Within this block, float64 op results carry random rounding errors of ``dtype``."""

    def __init__(self, dtype: torch.dtype, generator: torch.Generator):
        super().__init__()
        self.unit_roundoff = torch.finfo(dtype).eps / 2
        self.generator = generator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        return tree_map(self._rounded, result) if rounds(func) else result

    def _rounded(self, value):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.float64:
            return value
        noise = torch.rand(value.shape, generator=self.generator, dtype=torch.float64)
        return value * (1 + self.unit_roundoff * (2 * noise - 1)).to(value.device)
