"""Rounding noise of a computation, simulated in float64 (Monte Carlo arithmetic).

Within ``SimulatedRounding(unit_roundoff, generator)`` every float64 operation that
rounds carries a random error of up to ``unit_roundoff``, the way it would in a
dtype of that precision. The spread of the answers over a few runs estimates what
rounding does to them, intermediates included (the mean that std's backward
subtracts), and cannot excuse a low-precision kernel that is wrong: it never
runs one. How an operation's error is simulated depends on what it is:

- an *accumulation* (sums, means, matrix products, convolutions and their
  backward passes, pooling) errs by up to
  ``u * op(|args|)`` — the sum of the magnitudes it adds, which its partial sums
  round at, not only the size of the result (``x - x.mean()`` where the sum cancels);
- a *Fourier transform* errs in every output by about ``u log2(n) sum |x|`` over the
  transformed dims (its butterflies mix every input into every output);
- a *composite* with a decomposition in ``torch._decomp`` (softmax and its
  backward, the norms, the losses, var/std, logsumexp, GELU and the other
  activations and their backward passes) runs decomposed, so that its inner
  operations round one by one (the ``grad - sum(grad * s)`` inside softmax's
  backward cancels, and so does GELU's ``1 + erf(x / sqrt 2)`` below 0);
- views, in-place results, copies and selections (max, sort, indexing, cat) and
  exact operations (abs, where, clamp, relu, ...) are left alone: moving a maximum
  would break the backward that compares it with its input;
- any other operation errs relatively: its result times ``1 + u r`` (an op the
  lists do not know is taken to round: the safe side for an allowance).

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

from harness._compat import (
    decompositions,
    dispatch_mode,
    is_mutable,
    is_zero_tensor,
    tree_map,
    written_arguments,
)

# Pointwise ops whose result is exact (or a selection): moving it would not be
# rounding, and could break an algorithm that compares it with its input.
EXACT_POINTWISE = frozenset({
    "abs", "ceil", "clamp", "clamp_max", "clamp_min", "clip", "clone", "conj_physical",
    "copysign", "floor", "fmax", "fmin", "fmod", "frac", "frexp", "hardshrink", "hardtanh",
    "heaviside", "ldexp", "masked_fill", "max", "maximum", "min", "minimum", "nan_to_num",
    "neg", "nextafter", "relu", "relu6", "remainder", "round", "sgn", "sign", "signbit",
    "softshrink", "threshold", "threshold_backward", "trunc", "where",
})
# Other ops whose result is a copy, a selection or a constant: exact. Any op in
# neither list is assumed to round (relatively), the safe side for an allowance.
STRUCTURAL = frozenset({
    "_to_copy", "copy", "lift_fresh_copy", "alias_copy", "detach_copy", "cat", "stack",
    "index", "index_select", "gather", "scatter", "scatter_reduce", "masked_select",
    "masked_scatter", "take", "take_along_dim", "index_put", "index_fill", "repeat",
    "repeat_interleave", "roll", "flip", "rot90", "tril", "triu", "diag", "diag_embed",
    "diagonal_scatter", "slice_scatter", "select_scatter", "as_strided_scatter",
    "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
    "replication_pad1d", "replication_pad2d", "replication_pad3d", "narrow_copy",
    "select_backward", "slice_backward", "diagonal_backward", "embedding",
    "one_hot", "fill", "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros",
    "new_ones", "new_empty", "new_full", "zeros", "ones", "empty", "full", "scalar_tensor",
    "empty_strided", "new_empty_strided", "amax", "amin", "aminmax", "max", "min", "sort",
    "topk", "kthvalue", "median", "nanmedian", "mode", "argmax", "argmin", "argsort",
    "msort", "cummax", "cummin", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "max_unpool2d", "max_unpool3d",
    "value_selecting_reduction_backward", "masked_fill", "expand_copy", "permute_copy",
    "t_copy", "transpose_copy", "squeeze_copy", "unsqueeze_copy", "view_copy",
    "_unsafe_view", "unfold_copy", "split_with_sizes_copy", "unbind_copy", "clone",
    "_local_scalar_dense", "isin", "searchsorted", "bucketize", "unique_dim",
    "_unique2", "nonzero", "count_nonzero", "any", "all", "logical_not",
    "_efficientzerotensor", "is_same_size", "_has_same_storage_numel",
})
# Sums of products: each output errs by up to u times the sum of the magnitudes it
# accumulates, which the same op over |args| computes (one op, however many terms).
ACCUMULATIONS = frozenset({
    "sum", "nansum", "mean", "cumsum", "mm", "bmm", "addmm", "addmv", "addbmm", "baddbmm",
    "mv", "dot", "vdot", "convolution", "convolution_backward", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "avg_pool2d_backward", "avg_pool3d_backward",
    "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d", "_adaptive_avg_pool3d_backward",
    "scatter_add", "trace", "linalg_vecdot", "max_pool2d_with_indices_backward",
    "max_pool3d_with_indices_backward", "col2im", "im2col",
    # interpolation: each output a weighted sum of inputs, each input's gradient a
    # weighted sum of cotangents (nearest's forward only selects: STRUCTURAL)
    "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_bilinear2d_aa",
    "_upsample_bicubic2d_aa", "upsample_linear1d_backward", "upsample_bilinear2d_backward",
    "upsample_bicubic2d_backward", "upsample_trilinear3d_backward",
    "_upsample_bilinear2d_aa_backward", "_upsample_bicubic2d_aa_backward",
    "upsample_nearest1d_backward", "upsample_nearest2d_backward",
    "upsample_nearest3d_backward", "_upsample_nearest_exact1d_backward",
    "_upsample_nearest_exact2d_backward", "_upsample_nearest_exact3d_backward",
    # padding's backward: an edge (replicate) or mirrored (reflect) element's gradient sums
    # the cotangents of every output it was copied to
    "replication_pad1d_backward", "replication_pad2d_backward", "replication_pad3d_backward",
    "reflection_pad1d_backward", "reflection_pad2d_backward", "reflection_pad3d_backward",
    # embedding's backward, decomposed: a repeated index's row sums its cotangents
    "_unsafe_masked_index_put_accumulate",
})
# Discrete Fourier transforms: every output is a sum over all the transformed inputs,
# which an FFT's log2(n) stages of butterflies round, so each output errs by about
# u log2(n) sum |x| (times the normalisation), however small the output itself.
TRANSFORMS = frozenset({"_fft_r2c", "_fft_c2c", "_fft_c2r"})
# Composite ops that run decomposed (where torch._decomp has a decomposition), so
# that their inner operations round one by one: the cancellations inside softmax's
# backward, layer norm, GELU's Phi(x) = (1 + erf(x / sqrt 2)) / 2.
COMPOSITES = frozenset({
    "prod", "std", "var", "std_mean", "var_mean", "norm", "linalg_vector_norm", "logsumexp",
    "cumprod", "logcumsumexp", "_softmax", "_log_softmax", "_softmax_backward_data",
    "_log_softmax_backward_data", "native_layer_norm", "native_layer_norm_backward",
    "native_group_norm", "native_group_norm_backward", "native_batch_norm",
    "native_batch_norm_backward", "_native_batch_norm_legit", "_fused_rms_norm",
    "_fused_rms_norm_backward", "_cdist_forward", "_cdist_backward", "_euclidean_dist",
    "dist", "mse_loss", "mse_loss_backward", "binary_cross_entropy",
    "binary_cross_entropy_backward", "smooth_l1_loss", "smooth_l1_loss_backward",
    "huber_loss", "huber_loss_backward", "nll_loss_forward", "nll_loss_backward",
    "nll_loss2d_forward", "nll_loss2d_backward", "embedding_dense_backward", "index_add",
    "_adaptive_avg_pool2d", "upsample_bilinear2d", "upsample_linear1d", "grid_sampler_2d",
    "gelu", "gelu_backward", "silu", "silu_backward", "softplus", "softplus_backward", "elu",
    "elu_backward", "celu", "selu", "mish", "mish_backward", "hardswish",
    "hardswish_backward", "hardsigmoid", "hardsigmoid_backward", "log_sigmoid_forward",
    "log_sigmoid_backward", "logit", "logit_backward", "tanh_backward", "sigmoid_backward",
    "addcmul", "addcdiv", "lerp", "xlogy", "special_xlog1py", "logaddexp", "logaddexp2",
    "sinc", "special_entr", "special_log_ndtr",
})


def unit_roundoff(dtype: torch.dtype) -> float:
    """Half the distance from 1 to the next float of ``dtype``: its relative rounding error.

    >>> unit_roundoff(torch.float32) == 2.0**-24
    True
    """
    return torch.finfo(dtype).eps / 2


# In-place and out= arithmetic rounds as its functional twin does (a hand-written backward's
# ``grad_x += ...``, ``out.index_add_(0, idx, grad)``); every other op that writes an
# argument (copy_, fill_, index_put_, masked_fill_, scatter_, random fills) moves values
# without rounding them.
INPLACE_RELATIVE = frozenset({
    "add", "sub", "mul", "div", "addcmul", "addcdiv", "lerp", "pow", "exp", "log", "sqrt",
    "rsqrt", "reciprocal", "sigmoid", "tanh", "sin", "cos", "neg", "square",
})
INPLACE_ACCUMULATIONS = ACCUMULATIONS | {"index_add"}


@cache  # called for every op of every simulated run
def treatment(func) -> str:
    """How an aten op's rounding is simulated: 'exact', 'accumulation', 'transform',
    'decomposed', 'relative', or for an op that writes an argument 'accumulation in place' or
    'relative in place' (a view is always 'exact': moving it would move its base)."""
    if func.is_view:
        return "exact"
    name = func.overloadpacket.__name__
    if is_mutable(func):
        base = name.removesuffix("_")
        if base in INPLACE_ACCUMULATIONS:
            return "accumulation in place"
        return "relative in place" if base in INPLACE_RELATIVE else "exact"
    if name in EXACT_POINTWISE or name in STRUCTURAL:
        return "exact"
    if name in ACCUMULATIONS:
        return "accumulation"
    if name in TRANSFORMS:
        return "transform"
    if name in COMPOSITES and func in decompositions():
        return "decomposed"
    return "relative"


def rounds(func) -> bool:
    """Whether an aten op's result carries rounding error at all."""
    return treatment(func) != "exact"


class SimulatedRounding(dispatch_mode()):
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
        if _accumulating_put(func, args, kwargs):
            how = "accumulation in place" if is_mutable(func) else "accumulation"
        if how == "decomposed":
            with self:  # the decomposition's own ops dispatch here, each one rounding
                return decompositions()[func](*args, **kwargs)
        if how.endswith("in place"):
            return self._in_place(func, how, args, kwargs)
        result = func(*args, **kwargs)
        if how == "relative":
            return tree_map(self._relative, result)
        if how == "accumulation":
            magnitude = func(*tree_map(_magnitude, args),
                             **{k: _magnitude(v, k in _FACTORS) for k, v in kwargs.items()})
            return tree_map(self._absolute, result, magnitude)
        if how == "transform":
            return self._absolute(result, _transform_magnitude(func, args, kwargs, result))
        return result

    def _in_place(self, func, how: str, args, kwargs):
        """Run an op that writes an argument, then round what it wrote where it stands (its
        aliases see the rounded value, as they would the real one)."""
        magnitude = None
        if how == "accumulation in place":  # the same op over |args|, before args change
            magnitude = func(*tree_map(_magnitude, args),
                             **{k: _magnitude(v, k in _FACTORS) for k, v in kwargs.items()})
        result = func(*args, **kwargs)
        for written in written_arguments(func, args, kwargs):
            if not _is_float64(written):
                continue
            parts = torch.view_as_real(written) if written.is_complex() else written
            if magnitude is None:
                scale = parts.abs()
            else:
                scale = magnitude.abs() if magnitude.is_complex() else magnitude
                scale = scale.unsqueeze(-1) if written.is_complex() else scale
            parts.add_(self._noise(parts) * scale)
        return result

    def _noise(self, value: torch.Tensor) -> torch.Tensor:
        """Uniform in [-u, u] (in each part of a complex value: each rounds), drawn on the
        CPU (the generator's device) and moved."""
        shape = (*value.shape, 2) if value.is_complex() else value.shape
        draw = self.unit_roundoff * (2 * torch.rand(shape, generator=self.generator,
                                                    dtype=torch.float64) - 1)
        return (torch.view_as_complex(draw) if value.is_complex() else draw).to(value.device)

    def _relative(self, value):
        if not _is_float64(value):
            return value
        if value.is_complex():  # each part errs relatively to itself
            parts = torch.view_as_real(value.resolve_conj())
            noise = torch.view_as_real(self._noise(value))
            return torch.view_as_complex((parts * (1 + noise)).contiguous())
        return value * (1 + self._noise(value))

    def _absolute(self, value, magnitude):
        if not _is_float64(value):
            return value
        return value + self._noise(value) * magnitude


def _is_float64(value) -> bool:
    """A dense float64 (or complex128) tensor with storage (not a ZeroTensor: forward
    AD's zero tangents have none, and arithmetic on one crashes)."""
    return (isinstance(value, torch.Tensor)
            and value.dtype in (torch.float64, torch.complex128)
            and value.layout == torch.strided and not is_zero_tensor(value))


def _transform_magnitude(func, args, kwargs, result: torch.Tensor) -> torch.Tensor:
    """log2(n) times the normalised sum of |x| over the transformed dims, for every output:
    the zero-frequency bin of the same transform of |x| is that sum."""
    x, dims = args[0], list(args[1])
    size = x.abs()
    if x.is_complex():
        size = size.to(x.dtype)
    zero_frequency = func(size, *args[1:], **kwargs).abs()
    for dim in dims:
        zero_frequency = zero_frequency.narrow(dim, 0, 1)
    points = math.prod(result.shape[d] for d in dims) if dims else 1
    return zero_frequency * max(1.0, math.log2(max(points, 1))) * torch.ones(
        result.shape, dtype=zero_frequency.dtype, device=zero_frequency.device)


_FACTORS = ("alpha", "beta")  # addmm's and baddbmm's scalar factors, keyword-only in aten


_PUTS = frozenset({"index_put", "_index_put_impl", "_unsafe_index_put"})


def _accumulating_put(func, args, kwargs) -> bool:
    """index_put with accumulate=True (advanced indexing's backward: a repeated index's
    gradient sums its cotangents) adds, where the same op without it only writes."""
    if not _is_put(func):
        return False
    return bool(kwargs.get("accumulate", args[3] if len(args) > 3 else False))


@cache  # asked of every op of every simulated run, like treatment
def _is_put(func) -> bool:
    return func.overloadpacket.__name__.removesuffix("_") in _PUTS


def _magnitude(value, factor: bool = False):
    """|value| for floating tensors and scalar factors; other arguments (dims, flags,
    indices) as they are."""
    if isinstance(value, torch.Tensor):
        return value.abs() if value.is_floating_point() else value
    if isinstance(value, float) or (factor and isinstance(value, int)):
        return abs(value)
    return value
