"""What the oracle costs: the performance targets of the numerics (issue 3).

1. ``finite_difference`` and ``taylor`` cost, per example, a number of forwards that
   does not grow with the input (directional derivatives): at 10^5 input elements
   within ``PER_EXAMPLE_LIMIT`` times one forward + backward (issue 3), and the target
   of issue 17 is ``PER_EXAMPLE_TARGET``; between the two the test is an xfail that
   names the figure. What the harness adds to the forwards its method must run (its
   own work: the backward, and each forward at a moved point) is held to
   ``OWN_WORK_LIMIT`` times that work: a figure that does not depend on how the spec's
   forward weighs against its backward.
2. The batched full Jacobian (``torch.func.vmap`` over the perturbations) is at least
   as accurate as ``gradcheck(fast_mode=False)`` at 1000 input elements, and the target
   is ``JACOBIAN_TARGET`` times faster. It is met where gradcheck's per-call overhead
   outweighs the forward's arithmetic (a cubic: ~18x; softmax, a dense Jacobian: ~14x)
   and not where float64 transcendentals dominate (tanh(x) x + sin(x): 7-9x); below the
   target the test is an xfail that names the figure.

The targets are asserted only when timing (``pytest --benchmark-only``); plain
``pytest`` runs each body once, checks that the oracle is right, and times nothing.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from harness import CHECKS, Input, Spec
from harness.bench.timing import time_calls
from harness.checks.case import Case
from harness.checks.evaluate import contracted
from harness.numerics.differences import partial_derivatives
from harness.spec.examples import Example

LARGE = 100_000
PER_EXAMPLE_LIMIT = 20.0
PER_EXAMPLE_TARGET = 10.0
OWN_WORK_LIMIT = 2.5
JACOBIAN_ELEMENTS = 1000
JACOBIAN_TARGET = 10.0
GRADCHECK_EPS = 1e-6  # gradcheck's default step


def smooth(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * x + torch.sin(x)


def smooth_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(x)
    return grad * (t + x * (1 - t**2) + torch.cos(x))


SPEC = Spec(name="tanh_x_plus_sin", forward=smooth, inputs={"x": Input(["n"])},
            backward={"x": smooth_backward}, dims={"n": (1, LARGE)})


def _example(size: int) -> Example:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(size, generator=generator, dtype=torch.float64) * 20 - 10
    return Example(dims={"n": size}, values={"x": x}, cotangent_seed=1)


def _median(benchmark) -> float:
    return benchmark.stats.stats.median



def _forwards_per_example(check: str, example: Example) -> int:
    """How many times ``check`` runs the forward in one example."""
    calls = 0

    def counted(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return smooth(x)

    spec = Spec(name=SPEC.name, forward=counted, inputs={"x": Input(["n"])},
                backward={"x": smooth_backward}, dims={"n": (1, LARGE)})
    CHECKS[check].run(Case(spec, example, "cpu", torch.float64))
    return calls


@pytest.mark.parametrize("check", ["finite_difference", "taylor"])
def test_per_example_cost_does_not_grow_with_size(check, benchmark) -> None:
    example = _example(LARGE)
    x = example.values["x"]

    def one_example() -> list:
        return CHECKS[check].run(Case(SPEC, example, "cpu", torch.float64))

    def forward_and_backward() -> None:
        leaf = x.clone().requires_grad_()
        smooth(leaf).backward(torch.ones_like(leaf))

    # The least any implementation of the method runs: the case's forward and backward,
    # and every other forward at a point moved along a direction (each step a new tensor).
    moved_forwards = _forwards_per_example(check, example) - 1
    direction = torch.rand(x.shape, generator=torch.Generator().manual_seed(3),
                           dtype=torch.float64)

    def own_work() -> None:
        forward_and_backward()
        for k in range(moved_forwards):
            smooth(torch.add(x, direction, alpha=1e-3 / 2 ** (k % 3)))

    benchmark.group = f"oracle: one example at {LARGE:,} elements"
    failures = benchmark(one_example)
    assert failures == [], "\n".join(f.summary for f in failures)
    if not benchmark.enabled:
        return
    # Timed in turns, so that a change in the machine's load moves all three alike.
    ours, baseline, least = (statistics.median(times) for times in time_calls(
        [one_example, forward_and_backward, own_work], min_rounds=20, min_time=1.0))
    ratio, overhead = ours / baseline, ours / least
    benchmark.extra_info.update(elements=LARGE, forward_backward_s=baseline,
                                ratio_to_forward_backward=ratio, forwards=moved_forwards + 1,
                                own_work_s=least, ratio_to_own_work=overhead)
    figures = (f"{check} costs {ratio:.1f}x one forward + backward at {LARGE:,} elements, "
               f"{overhead:.2f}x its own {moved_forwards + 1} forwards and backward")
    assert ratio <= PER_EXAMPLE_LIMIT, f"{figures} (limit: {PER_EXAMPLE_LIMIT:g}x)"
    assert overhead <= OWN_WORK_LIMIT, f"{figures} (limit: {OWN_WORK_LIMIT:g}x its own)"
    if ratio > PER_EXAMPLE_TARGET:
        # Issue 17, blocked on this figure. On this 2-core CPU both meet it on one thread
        # (OMP_NUM_THREADS=1: 8.6-8.9x); on two they come out at 9.4-11.6x. The method
        # sets the floor: 13 float64 forwards of the whole input for finite_difference
        # (Richardson's six along each of two directions, and the case's own), 14 for
        # taylor, where one forward + backward of this spec is about two and a half
        # forwards, so their own work alone is 6.0-6.9x; the whole example is 1.4-1.9x
        # its own work, the rest being the cotangent's and the direction's draws, about
        # 29 passes for the step scales, allowances and projections, and the 1-2 ms of
        # Python and dispatch that a 2-element spec pays too. Fewer evaluations would
        # cost the error bound that the sensitivity rests on.
        pytest.xfail(f"{figures}; not {PER_EXAMPLE_TARGET:g}x one forward + backward")


def cubic(x: torch.Tensor) -> torch.Tensor:
    return x**3 - 2 * x


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, -1)


def _softmax_vjp(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    s = softmax(x)
    return s * (v - (v * s).sum())


# (forward, its exact vector-Jacobian product): from cheap arithmetic, where gradcheck's
# per-call overhead dominates, to a dense Jacobian of exponentials.
JACOBIAN_FORWARDS = {
    "cubic": (cubic, lambda v, x: v * (3 * x**2 - 2)),
    "tanh_x_plus_sin": (smooth, smooth_backward),
    "softmax": (softmax, _softmax_vjp),
}


def _gradcheck_jacobian(forward, x: torch.Tensor) -> torch.Tensor:
    """gradcheck's numerical Jacobian (slow mode): a central difference with step eps
    per input element, two forwards each, column by column."""
    columns = []
    for i in range(x.numel()):
        step = torch.zeros_like(x)
        step[i] = GRADCHECK_EPS
        columns.append((forward(x + step) - forward(x - step)) / (2 * GRADCHECK_EPS))
    return torch.stack(columns, dim=1)


@pytest.mark.parametrize("name", JACOBIAN_FORWARDS)
def test_batched_jacobian_beats_gradcheck(name, benchmark) -> None:
    """What each needs to judge a backward at one example of 1000 elements: gradcheck the
    whole m x n Jacobian of f, the harness every partial derivative of <v, f> for a random
    cotangent v (one Jacobian row per cotangent, Richardson-extrapolated)."""
    forward, vjp = JACOBIAN_FORWARDS[name]
    spec = Spec(name=name, forward=forward, inputs={"x": Input(["n"])})
    x = _example(JACOBIAN_ELEMENTS).values["x"]
    cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(2),
                            dtype=torch.float64)
    point, scale = {"x": x}, x.abs().clamp(min=1e-2)

    output = forward(x)
    example = Example(dims={"n": JACOBIAN_ELEMENTS}, values={"x": x}, cotangent_seed=2)
    phi = contracted(spec, example, [cotangent], offsets=[output])
    magnitude = float((cotangent.abs() * output.abs()).sum())  # as Oracle.partials passes

    def batched() -> torch.Tensor:
        return partial_derivatives(phi, point, "x", scale, magnitude, centred=True).value

    def gradcheck_slow() -> None:
        torch.autograd.gradcheck(forward, (x.clone().requires_grad_(),), fast_mode=False)

    benchmark.group = f"oracle: full Jacobian of {name} at {JACOBIAN_ELEMENTS:,} elements"
    ours = benchmark(batched)
    exact = vjp(cotangent, x)
    our_error = float((ours - exact).abs().max())
    gradcheck_error = float((cotangent @ _gradcheck_jacobian(forward, x) - exact).abs().max())
    assert our_error <= gradcheck_error, (our_error, gradcheck_error)
    if not benchmark.enabled:
        return
    (theirs,) = time_calls([gradcheck_slow], min_rounds=3, min_time=1.0)
    speedup = statistics.median(theirs) / _median(benchmark)
    benchmark.extra_info.update(elements=JACOBIAN_ELEMENTS, gradcheck_s=statistics.median(theirs),
                                speedup=speedup, max_error=our_error,
                                gradcheck_max_error=gradcheck_error)
    if speedup < JACOBIAN_TARGET:
        # Known and accepted (issue 3, blocked): Richardson evaluates the forward on six
        # batches of n perturbed inputs, three times gradcheck's arithmetic, so where the
        # forward's arithmetic outweighs gradcheck's per-call overhead the speed-up stays
        # under 10x on this 2-core CPU. Two step sizes would be faster and lose the error
        # bound that the tolerance stands on.
        pytest.xfail(f"the batched Jacobian of {name} is {speedup:.1f}x faster than "
                     f"gradcheck(fast_mode=False) at {JACOBIAN_ELEMENTS:,} elements, not "
                     f"{JACOBIAN_TARGET:g}x; its error is {our_error:.1e} to gradcheck's "
                     f"{gradcheck_error:.1e}")
