"""What the contract checks cost (issue 16): each at most ``TARGET`` times ``analytic``.

On two specs with everything the three checks look at (two 2-d inputs, two outputs,
backward formulas for ``analytic``) — a matmul, where analytic measures rounding, and an
elementwise one that autograd matches bit for bit (the cheapest analytic) — two figures
per check:

1. per item, as the plugin runs it: ``verify`` over the harness-dev profile's drawn
   examples (20 for ``analytic``; the contract checks draw ``CONTRACT_EXAMPLES``, 5,
   since their verdict does not depend on the values) — asserted at most ``TARGET``x;
   and per item with the same 20 examples for every check — both asserted at most
   ``TARGET``x;
2. per example, one Case at a tiny and at a moderate size, reported: ``layouts`` runs
   about five forwards and backwards where ``analytic`` runs one, so where analytic
   is a single bit-exact formula call (``exact``) the ratio is above the target, an
   xfail that names the figure; where analytic measures rounding it is far below.

Asserted only when timing (``pytest benchmarks --benchmark-only``); plain ``pytest``
runs each body once and checks that the right spec passes.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import settings

from harness import CHECKS, Input, Spec, verify
from harness.bench.timing import time_calls
from harness.checks.case import Case
from harness.spec.examples import Example

TARGET = 3.0
CONTRACT = ("layouts", "batched", "undefined")
PROFILE = settings(max_examples=20, deadline=None, database=None, derandomize=True)


def forward(a: torch.Tensor, b: torch.Tensor):
    return a @ b, torch.tanh(a).sum(-1)


SPEC = Spec(
    name="matmul_and_row_tanh", forward=forward,
    inputs={"a": Input(("m", "k"), low=-2.0, high=2.0), "b": Input(("k", "n"), low=-2.0,
                                                                    high=2.0)},
    backward={"a": lambda grad, a, b: grad[0] @ b.mT + grad[1][:, None] * (1 - torch.tanh(a)**2),
              "b": lambda grad, a: a.mT @ grad[0]},
    dims={"m": (1, 8), "k": (1, 8), "n": (1, 8)},
)


# The cheapest analytic there is: formulas that autograd matches bit for bit, so that
# analytic never pays for measured rounding (on SPEC it does: a matmul's formula and
# autograd's kernels round differently).
EXACT = Spec(
    name="product_and_difference", forward=lambda a, b: (a * b, a - b),
    inputs={"a": Input(("m", "n")), "b": Input(("m", "n"))},
    backward={"a": lambda grad, b: grad[0] * b + grad[1],
              "b": lambda grad, a: grad[0] * a - grad[1]},
    dims={"m": (1, 8), "n": (1, 8)},
)
SPECS = {"matmul": SPEC, "exact": EXACT}


def _example(size: int) -> Example:
    generator = torch.Generator().manual_seed(0)
    values = {name: torch.rand(size, size, generator=generator, dtype=torch.float64) * 4 - 2
              for name in ("a", "b")}
    return Example(dims={"m": size, "k": size, "n": size}, values=values, cotangent_seed=1)


def _ratio(ours, theirs) -> float:
    return statistics.median(ours) / statistics.median(theirs)


@pytest.mark.parametrize("examples", ["as_run", "same"])
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("check", CONTRACT)
def test_per_item_cost(check, spec, examples, benchmark) -> None:
    """``as_run``: each check's own number of examples, as the plugin runs it; ``same``:
    20 examples for every check."""
    count = None if examples == "as_run" else PROFILE.max_examples

    def item(name: str):
        return lambda: verify(SPECS[spec], checks=[name], settings=PROFILE, max_examples=count)

    benchmark.group = f"contract checks: one item of {spec} ({examples} examples)"
    report = benchmark(item(check))
    assert report.passed, str(report)
    if not benchmark.enabled:
        return
    ours, analytic = time_calls([item(check), item("analytic")], min_rounds=5, min_time=2.0)
    ratio = _ratio(ours, analytic)
    benchmark.extra_info.update(analytic_s=statistics.median(analytic), ratio_to_analytic=ratio)
    assert ratio <= TARGET, f"{check} costs {ratio:.2f}x analytic per item (target {TARGET:g}x)"


@pytest.mark.parametrize("size", [4, 64])
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("check", CONTRACT)
def test_per_example_cost(check, spec, size, benchmark) -> None:
    example = _example(size)

    def one(name: str):
        return lambda: CHECKS[name].run(Case(SPECS[spec], example, "cpu", torch.float64))

    benchmark.group = f"contract checks: one example of {spec} at {size}x{size}"
    failures = benchmark(one(check))
    assert failures == [], "\n".join(f.summary for f in failures)
    if not benchmark.enabled:
        return
    ours, analytic = time_calls([one(check), one("analytic")], min_rounds=20, min_time=1.0)
    ratio = _ratio(ours, analytic)
    benchmark.extra_info.update(analytic_s=statistics.median(analytic), ratio_to_analytic=ratio)
    if ratio > TARGET:
        # Known: where analytic is one bit-exact formula call, a check that runs five
        # forwards and backwards costs more per example; per item (Hypothesis' drawing
        # included) it stays within the target, asserted in test_per_item_cost.
        pytest.xfail(f"{check} costs {ratio:.2f}x analytic on one {size}x{size} example of "
                     f"{spec} (per item it is within {TARGET:g}x: test_per_item_cost)")
