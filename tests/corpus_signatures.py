"""Planted bugs that need a signature beyond one tensor in, one tensor out, and their twins.

Each planted bug (``SIGNATURE_PLANTED``, run by test_planted_bugs.py beside the others)
has a correct twin in ``SIGNATURE_TWINS`` (run by test_tricky.py): the same spec with
the bug fixed, which every applicable check must pass. The bugs are what the people
this harness is for get wrong: a two-output Function wrong only through its second
output or ignoring that output's cotangent, an embedding whose backward overwrites
where repeated indices must accumulate, a gather wrong for negative indices, a
masked function whose backward ignores the mask, a complex function whose backward
misses a conjugate, and a backward right for ``dim=0`` but wrong for ``dim=-1``.
"""

from __future__ import annotations

import torch
from corpus_planted import ANALYTIC, ORACLE, Planted
from corpus_tricky import Tricky
from torch.autograd import Function

from harness import Input, Spec

COMPLEX = ("complex128", "complex64")


def _sin_exp(wrong_second: float, second: bool = True):
    """(sin x, exp x) as a Function; the backward scales the second output's term."""

    class SinExp(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sin(x), torch.exp(x)

        @staticmethod
        def backward(ctx, grad_sin, grad_exp):
            (x,) = ctx.saved_tensors
            through_sin = grad_sin * torch.cos(x)
            if not second:  # the bug: the exp output's cotangent is never read
                return through_sin
            return through_sin + grad_exp * torch.exp(x) * wrong_second

    return lambda x: SinExp.apply(x)


def _embedding(accumulate: bool):
    """weight[idx] as a Function; the backward adds (or overwrites) rows at idx."""

    class Embedding(Function):
        @staticmethod
        def forward(ctx, weight, idx):
            ctx.save_for_backward(idx)
            ctx.rows = weight.shape[0]
            return weight[idx]

        @staticmethod
        def backward(ctx, grad):
            (idx,) = ctx.saved_tensors
            out = grad.new_zeros((ctx.rows, *grad.shape[1:]))
            if accumulate:
                out.index_add_(0, idx, grad)
            else:  # the bug: a repeated index keeps the last row's gradient only
                out[idx] = grad
            return out, None

    return lambda weight, idx: Embedding.apply(weight, idx)


GATHER_LOW = -4  # indices from -4: x has at least 4 elements (dims n >= 4)


def _gather(wrap_negative: bool):
    """x[idx] with indices that may be negative; the backward scatters grad back."""

    class Gather(Function):
        @staticmethod
        def forward(ctx, x, idx):
            ctx.save_for_backward(idx)
            ctx.size = x.shape[0]
            return x[idx]

        @staticmethod
        def backward(ctx, grad):
            (idx,) = ctx.saved_tensors
            # the bug: a negative index clamped to 0 instead of counted from the end
            where = idx % ctx.size if wrap_negative else idx.clamp(min=0)
            return grad.new_zeros(ctx.size).index_add_(0, where, grad), None

    return lambda x, idx: Gather.apply(x, idx)


def _complex_square(conjugate: bool):
    """z ** 2 as a Function; its backward is grad * conj(2 z) (PyTorch's convention)."""

    class ComplexSquare(Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z * z

        @staticmethod
        def backward(ctx, grad):
            (z,) = ctx.saved_tensors
            derivative = 2 * z
            return grad * (derivative.conj() if conjugate else derivative)

    return lambda z: ComplexSquare.apply(z)


def _masked_square_backward(respect_mask: bool):
    def backward(grad, x, mask):
        kept = x.masked_fill(mask, 0.0) if respect_mask else x
        return grad * 2 * kept

    return backward


def _softmax_backward(follow_dim: bool):
    def backward(grad, result, dim):
        along = dim if follow_dim else 0  # the bug: always reduces over dim 0
        return result * (grad - (grad * result).sum(along, keepdim=True))

    return backward


def _specs(fixed: bool) -> list[tuple[Spec, frozenset[str], str, str, tuple[str, ...]]]:
    """Each spec with its planted bug (``fixed`` False) or fixed, and what must catch it."""
    tag = "" if not fixed else "_right"
    vector = Input(("n",), low=-2.0, high=2.0)
    return [
        (Spec(name=f"two_outputs_wrong_second{tag}",
              forward=_sin_exp(1.0 if fixed else 1.5), inputs={"x": vector}),
         ORACLE, "x", "a two-output Function: the second output's term is 1.5x too large",
         ("float64", "float32")),
        (Spec(name=f"two_outputs_ignores_second{tag}",
              forward=_sin_exp(1.0, second=fixed), inputs={"x": vector}),
         ORACLE, "x", "a two-output Function's backward ignores the second cotangent",
         ("float64", "float32")),
        (Spec(name=f"embedding_overwrites{tag}", forward=_embedding(accumulate=fixed),
              inputs={"weight": Input(("V", "D")),
                      "idx": Input(("N",), dtype="int64", low=0, high="V")},
              dims={"V": (1, 3), "D": (1, 3), "N": (2, 6)}),
         ORACLE, "weight", "embedding: gw[idx] = grad overwrites repeated indices",
         ("float64", "float32")),
        (Spec(name=f"gather_negative_index{tag}", forward=_gather(wrap_negative=fixed),
              inputs={"x": Input(("n",)),
                      "idx": Input(("m",), dtype="int64", low=GATHER_LOW, high=4)},
              dims={"n": (4, 6), "m": (1, 6)}),
         ORACLE, "x", "gather: a negative index's gradient lands on element 0",
         ("float64", "float32")),
        (Spec(name=f"masked_ignores_mask{tag}",
              forward=lambda x, mask: x.masked_fill(mask, 0.0).square(),
              inputs={"x": Input(("n",)), "mask": Input(("n",), dtype="bool")},
              backward={"x": _masked_square_backward(respect_mask=fixed)}),
         ANALYTIC, "x", "masked_fill: the backward ignores the mask", ("float64", "float32")),
        (Spec(name=f"complex_mul_missing_conj{tag}", forward=lambda z, w: z * w,
              inputs={"z": Input(("n",)), "w": Input(("n",))}, dtypes=COMPLEX,
              backward={"z": (lambda grad, w: grad * w.conj()) if fixed else
                        (lambda grad, w: grad * w),
                        "w": lambda grad, z: grad * z.conj()}),
         ANALYTIC, "z", "complex z * w: the gradient of z misses conj(w)", COMPLEX),
        (Spec(name=f"fn_complex_square_missing_conj{tag}",
              forward=_complex_square(conjugate=fixed), inputs={"z": Input(("n",))},
              dtypes=COMPLEX),
         ORACLE, "z", "a complex Function's backward misses the conjugate", COMPLEX),
        (Spec(name=f"softmax_wrong_for_last_dim{tag}",
              forward=lambda x, dim: torch.softmax(x, dim), inputs={"x": Input(("m", "n"))},
              params={"dim": [0, -1]}, dims={"m": (2, 4), "n": (2, 4)},
              backward={"x": _softmax_backward(follow_dim=fixed)}),
         ANALYTIC, "x", "softmax's backward reduces over dim 0 whatever dim is",
         ("float64", "float32")),
    ]


SIGNATURE_PLANTED = [Planted(spec, catches, name, bug, dtypes)
                     for spec, catches, name, bug, dtypes in _specs(fixed=False)]
SIGNATURE_TWINS = [Tricky(spec, f"the twin of a planted bug, fixed ({bug})",
                          no_forward_ad=spec.name.startswith(("two_", "embedding", "gather",
                                                              "fn_")),
                          dtypes=dtypes)
                   for spec, _, _, bug, dtypes in _specs(fixed=True)]
