"""Rounding noise of a computation, simulated in float64 (Monte Carlo arithmetic).

Within ``SimulatedRounding(unit_roundoff, generator)`` every float64 operation that
rounds carries a random error of up to ``unit_roundoff``, the way it would in a
dtype of that precision. The spread of the answers over a few runs estimates what
rounding does to them, intermediates included (the mean that std's backward
subtracts), and cannot excuse a low-precision kernel that is wrong: it never
runs one. How an operation's error is simulated depends on what it is:

- an *accumulation* (sums, means, matrix products, convolutions) errs by up to
  ``u * op(|args|)`` — the sum of the magnitudes it adds, which its partial sums
  round at, not only the size of the result (``x - x.mean()`` where the sum cancels);
- a *composite* with a decomposition in ``torch._decomp`` (softmax and its
  backward, the norms, the losses, var/std, logsumexp) runs decomposed, so that
  its inner operations round one by one (the ``grad - sum(grad * s)`` inside
  softmax's backward cancels);
- any other rounding operation errs relatively: its result times ``1 + u r``;
- views, in-place results, selections (max, sort, indexing) and exact operations
  (abs, where, clamp, relu, ...) are left alone: moving a maximum would break the
  backward that compares it with its input.

>>> import torch
>>> x = torch.tensor([-10.0, -9.96], dtype=torch.float64)
>>> with SimulatedRounding(unit_roundoff(torch.float32), torch.Generator().manual_seed(0)):
...     deviation = x - x.mean()
>>> bool((deviation - (x - x.mean())).abs().max() > 0)
True
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch._decomp import decomposition_table
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
# Sums of products: each output element errs by up to u times the sum of the
# magnitudes it accumulates, which the same op over |args| computes.
ACCUMULATIONS = frozenset({
    "sum", "nansum", "mean", "cumsum", "mm", "bmm", "addmm", "addmv", "addbmm", "baddbmm",
    "mv", "dot", "vdot", "convolution",
})
# Composite ops run decomposed where torch._decomp has a decomposition; the rest
# round relatively. Selections (max, sort, index) are left out on purpose.
COMPOSITES = frozenset({
    "prod", "std", "var", "std_mean", "var_mean", "norm", "linalg_vector_norm", "logsumexp",
    "cumprod", "logcumsumexp", "_softmax", "_log_softmax", "_softmax_backward_data",
    "_log_softmax_backward_data", "native_layer_norm", "native_layer_norm_backward",
    "native_group_norm", "native_group_norm_backward", "native_batch_norm",
    "native_batch_norm_backward", "_native_batch_norm_legit", "_fused_rms_norm",
    "_fused_rms_norm_backward", "convolution_backward", "_cdist_forward", "_cdist_backward",
    "_euclidean_dist", "dist", "mse_loss", "mse_loss_backward", "binary_cross_entropy",
    "binary_cross_entropy_backward", "smooth_l1_loss", "smooth_l1_loss_backward",
    "huber_loss", "huber_loss_backward",
})


def unit_roundoff(dtype: torch.dtype) -> float:
    """Half the distance from 1 to the next float of ``dtype``: its relative rounding error.

    >>> unit_roundoff(torch.float32) == 2.0**-24
    True
    """
    return torch.finfo(dtype).eps / 2


@cache  # called for every op of every simulated run
def treatment(func) -> str:
    """How an aten op's rounding is simulated: 'exact', 'accumulation', 'decomposed'
    or 'relative' (a view or an in-place result is always 'exact')."""
    if func.is_view or func._schema.is_mutable:
        return "exact"  # it aliases another tensor, which moving it would move too
    name = func.overloadpacket.__name__
    if torch.Tag.pointwise in func.tags:
        return "exact" if name in EXACT_POINTWISE else "relative"
    if name in ACCUMULATIONS:
        return "accumulation"
    if name in COMPOSITES:
        return "decomposed" if func in decomposition_table else "relative"
    return "exact"


def rounds(func) -> bool:
    """Whether an aten op's result carries rounding error at all."""
    return treatment(func) != "exact"


class SimulatedRounding(TorchDispatchMode):
    """Within this block, float64 op results carry random rounding errors of ``unit_roundoff``."""

    def __init__(self, unit_roundoff: float, generator: torch.Generator):
        super().__init__()
        if not 0 < unit_roundoff < 1 or not math.isfinite(unit_roundoff):
            raise ValueError(f"unit_roundoff={unit_roundoff!r} must be in (0, 1)")
        self.unit_roundoff = unit_roundoff
        self.generator = generator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        how = treatment(func)
        if how == "decomposed":
            with self:  # the decomposition's own ops dispatch here, each one rounding
                return decomposition_table[func](*args, **kwargs)
        result = func(*args, **kwargs)
        if how == "relative":
            return tree_map(self._relative, result)
        if how == "accumulation" and _is_float64(result):
            magnitude = func(*tree_map(_magnitude, args),
                             **{k: _magnitude(v, k in _FACTORS) for k, v in kwargs.items()})
            return self._absolute(result, magnitude)
        return result

    def _noise(self, value: torch.Tensor) -> torch.Tensor:
        """Uniform in [-u, u], drawn on the CPU (the generator's device) and moved."""
        draw = torch.rand(value.shape, generator=self.generator, dtype=torch.float64)
        return (self.unit_roundoff * (2 * draw - 1)).to(value.device)

    def _relative(self, value):
        if not _is_float64(value):
            return value
        return value * (1 + self._noise(value))

    def _absolute(self, value: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        return value + self._noise(value) * magnitude


def _is_float64(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.float64


_FACTORS = ("alpha", "beta")  # addmm's and baddbmm's scalar factors, keyword-only in aten


def _magnitude(value, factor: bool = False):
    """|value| for tensors and scalar factors; other arguments (dims, flags) as they are."""
    if isinstance(value, torch.Tensor):
        return value.abs()
    if isinstance(value, float) or (factor and isinstance(value, int)):
        return abs(value)
    return value
