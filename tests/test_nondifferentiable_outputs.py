"""Outputs autograd does not differentiate: a Function's ``ctx.mark_non_differentiable``
(the log-sum-exp an attention kernel returns beside its output), declared with
``nondifferentiable_outputs``: no cotangent, no gradient through them, and finite
differences do not see them either."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function

from harness import Input, Spec, verify
from harness.registry import CHECK_NAMES


class SoftmaxWithLse(Function):
    """softmax(x) and logsumexp(x), the second marked non-differentiable."""

    @staticmethod
    def forward(ctx, x):
        lse = torch.logsumexp(x, dim=-1, keepdim=True)
        out = torch.exp(x - lse)
        ctx.save_for_backward(out)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        (out,) = ctx.saved_tensors
        return out * (grad_out - (grad_out * out).sum(-1, keepdim=True))


def _spec(**options) -> Spec:
    return Spec(name="softmax_lse", forward=lambda x: SoftmaxWithLse.apply(x),
                inputs={"x": Input(["n", 4])}, dims={"n": [1, 3]}, **options)


@pytest.mark.parametrize("check", [c for c in CHECK_NAMES
                                   if c not in ("analytic", "reference", "gradgradcheck",
                                                "devices", "forward_mode", "batched",
                                                "undefined")])
def test_a_declared_output_is_left_out_of_every_check(check: str) -> None:
    report = verify(_spec(nondifferentiable_outputs=[1]), checks=[check], max_examples=5)
    assert report.passed, str(report)
    assert check not in report.skipped and report.examples > report.discarded, str(report)


def test_a_declared_output_leaves_no_cotangent_to_leave_undefined() -> None:
    """With lse declared, one output is differentiated: nothing for ``undefined`` to omit."""
    report = verify(_spec(nondifferentiable_outputs=[1]), checks=["undefined"], max_examples=1)
    assert report.skipped == {"undefined": "the forward has one differentiable output: no "
                                           "cotangent can be left undefined"}, str(report)
    assert "undefined" not in verify(_spec(), checks=["undefined"], max_examples=1).skipped


def test_an_undeclared_output_without_a_graph_fails_and_says_what_to_declare() -> None:
    report = verify(_spec(), checks=["finite_difference"], max_examples=5)
    assert not report.passed
    assert "Output 1 of the forward carries no gradient (detached, or marked " \
           "non-differentiable): if autograd is not meant to differentiate it, declare " \
           "nondifferentiable_outputs=[1]" in str(report), str(report)


def test_an_index_past_the_outputs_is_a_fault_naming_it() -> None:
    report = verify(_spec(nondifferentiable_outputs=[2]), checks=["finite_difference"],
                    max_examples=1)
    assert not report.passed
    assert "nondifferentiable_outputs names output 2, but forward returned 2 outputs" \
        in str(report), str(report)
