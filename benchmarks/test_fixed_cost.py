"""What one check costs on a tiny spec, against ``torch.autograd.gradcheck`` (issue 17).

On a 2-element spec the arithmetic is nothing; what is left is the harness's own fixed
cost: building the example, the oracle's batched steps, the comparisons. The target:
one check on the spec's explicit example at most ``FIXED_TARGET_S`` (3 ms) and at most
``RATIO_TARGET`` (2x) gradcheck's time on the same function at the same point, both
timed in turns in one run on one thread (``one_thread``), so that a change in the
machine's load moves both alike.
The absolute figure is asserted on the fastest call (load only ever adds to it), the
ratio on the medians. One example drawn by Hypothesis (its engine's own cost on top)
is timed alongside and reported in ``extra_info``, with no target.

Asserted only when timing (``pytest benchmarks --benchmark-only``); plain ``pytest``
runs each body once and checks that the spec passes.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from hypothesis import Phase, settings

from harness import Input, Spec, verify
from harness.bench.timing import time_calls

FIXED_TARGET_S = 3e-3
RATIO_TARGET = 2.0
POINT = [0.5, -1.25]
CHECKS = ("analytic", "finite_difference", "taylor", "gradcheck")
# As the plugin's profiles: no example database, no explain phase.
DRAWN = settings(database=None, deadline=None,
                 phases=[phase for phase in Phase if phase is not Phase.explain])


def exp_sin(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x / 2) * torch.sin(x)


def exp_sin_vjp(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return grad * torch.exp(x / 2) * (torch.sin(x) / 2 + torch.cos(x))


def _spec(examples=()) -> Spec:
    return Spec(name="exp_sin_2", forward=exp_sin, inputs={"x": Input(["n"], low=-3, high=3)},
                backward={"x": exp_sin_vjp}, dims={"n": (2, 2)}, examples=examples)


EXPLICIT = _spec(examples=[{"x": POINT}])
BARE = _spec()


@pytest.mark.parametrize("check", CHECKS)
def test_fixed_cost_of_one_check(check, benchmark, one_thread) -> None:
    x = torch.tensor(POINT, dtype=torch.float64, requires_grad=True)

    def explicit():
        return verify(EXPLICIT, checks=[check], max_examples=0)

    def drawn():
        return verify(BARE, checks=[check], max_examples=1, seed=0, settings=DRAWN)

    def gradcheck():
        return torch.autograd.gradcheck(exp_sin, (x,))

    benchmark.group = "fixed cost: one check on a 2-element spec"
    report = benchmark(explicit)
    assert report.passed and report.examples == 1, str(report)
    assert drawn().passed
    if not benchmark.enabled:
        return
    ours, one_drawn, theirs = time_calls([explicit, drawn, gradcheck], min_rounds=50,
                                         min_time=2.0)
    ratio = statistics.median(ours) / statistics.median(theirs)
    benchmark.extra_info.update(
        explicit_s=statistics.median(ours), explicit_min_s=min(ours),
        one_drawn_s=statistics.median(one_drawn), gradcheck_s=statistics.median(theirs),
        ratio_to_gradcheck=ratio)
    assert min(ours) <= FIXED_TARGET_S, (
        f"{check} on one explicit example takes at least {min(ours) * 1e3:.2f} ms "
        f"(target: at most {FIXED_TARGET_S * 1e3:g} ms)")
    assert ratio <= RATIO_TARGET, (
        f"{check} on one explicit example costs {ratio:.2f}x gradcheck "
        f"({statistics.median(ours) * 1e3:.2f} ms to {statistics.median(theirs) * 1e3:.2f} "
        f"ms; target: at most {RATIO_TARGET:g}x)")
