"""Low-precision kernels against their reference: float32, float16 and bfloat16 on the CPU.

The rule is flash-attention's, per element: the kernel may err against the reference
run in float64 by twice what the reference errs in the kernel's dtype (as it does at
this point, or as its measured rounding says it may). Right kernels pass in every
dtype; a kernel that rounds worse than the dtype must fail in each dtype it shows in.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness import Input, Spec, verify

SEEDS = (0, 1, 2)
LOW = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _layer_norm(x, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _layer_norm_mean_in_bfloat16(x, eps=1e-5):
    """A float32 kernel that takes its mean in bfloat16: 8 bits where 24 are needed."""
    low = x.to(torch.bfloat16) if x.dtype == torch.float32 else x
    mean = low.mean(-1, keepdim=True).to(x.dtype)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


RIGHT = [
    Spec(name="layer_norm", forward=_layer_norm, inputs={"x": Input(("m", "n"))},
         dims={"n": (2, 64)}, reference=lambda x: F.layer_norm(x, x.shape[-1:]),
         examples=[{"x": [[-10.0, -9.96]]}]),
    Spec(name="softplus_log1p", forward=lambda x: torch.log1p(torch.exp(x)),
         inputs={"x": Input(("n",), low=-15, high=10)}, reference=F.softplus),
]
WRONG = [  # (spec, the dtypes it must fail in)
    (Spec(name="softplus_naive", forward=lambda x: torch.log(1 + torch.exp(x)),
          inputs={"x": Input(("n",), low=-15, high=10)}, reference=F.softplus,
          examples=[{"x": [-8.0, 0.5]}]),
     ("float32", "float16", "bfloat16")),  # 1 + exp(-8) rounds to 1 below float32
    (Spec(name="layer_norm_mean_in_bfloat16", forward=_layer_norm_mean_in_bfloat16,
          inputs={"x": Input(("m", "n"), low=50, high=60)}, dims={"n": (2, 64)},
          reference=lambda x: F.layer_norm(x, x.shape[-1:])),
     ("float32",)),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("spec", RIGHT, ids=[spec.name for spec in RIGHT])
def test_a_right_kernel_passes_against_its_reference(spec: Spec, dtype: str, seed: int) -> None:
    report = verify(spec, checks=["reference"], dtype=LOW[dtype], seed=seed, max_examples=10)
    assert report.passed, str(report)
    assert report.examples > report.discarded


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("spec", "dtype"), [(spec, dtype) for spec, dtypes in WRONG
                                             for dtype in dtypes],
                         ids=[f"{spec.name}-{dtype}" for spec, dtypes in WRONG
                              for dtype in dtypes])
def test_a_kernel_that_rounds_worse_than_its_dtype_fails(spec: Spec, dtype: str,
                                                         seed: int) -> None:
    report = verify(spec, checks=["reference"], dtype=LOW[dtype], seed=seed, max_examples=10)
    assert not report.passed
    headline = str(report).splitlines()[0]
    assert headline.startswith(("Forward disagrees with the reference",
                                "Gradient of 'x' is wrong")), headline


@pytest.mark.parametrize("spec", [spec for spec, _ in WRONG], ids=[s.name for s, _ in WRONG])
def test_the_wrong_kernels_are_right_in_float64(spec: Spec) -> None:
    assert verify(spec, checks=["reference"], seed=0, max_examples=10).passed


def test_a_naive_kernel_that_overflows_in_float16_is_told_so() -> None:
    """log1p(exp(x)) overflows float16 above x = 11, where F.softplus does not."""
    spec = Spec(name="softplus_overflow", forward=lambda x: torch.log1p(torch.exp(x)),
                inputs={"x": Input(("n",), low=-15, high=15)}, reference=F.softplus,
                examples=[{"x": [12.0]}])
    report = verify(spec, checks=["reference"], dtype=torch.float16, max_examples=0)
    headline = str(report).splitlines()[0]
    assert headline.startswith("The spec's code failed"), headline
    assert "forward returned a non-finite value" in headline, headline
