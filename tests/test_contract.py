"""The contract checks: every planted contract bug caught in every seed, every twin passes.

The corpus is ``corpus_contract``: ``BROKEN`` (a bug, the check that must catch it,
its headline, and a right twin) and ``SIGNATURES`` (right specs of every signature).
A bug counts as caught only when ``verify`` fails it with the expected headline;
verify runs with the check's own number of examples (``CheckInfo.max_examples``, as
the plugin runs it), so that this also proves those few suffice. Seeds 0-2 run by
default (the twins and right specs seed 0), ``pytest -m heavy`` the rest of seeds 0-9.
Only finding the bug counts: no shrinking.
"""

from __future__ import annotations

import pytest
import torch
from corpus_contract import BOTH, BROKEN, CONTRACT_CHECKS, SIGNATURES, Broken
from quick import NO_SHRINK

from harness import CHECKS, Input, Spec, verify
from harness.registry import CHECK_INFO

SEEDS = (0, 1, 2)
HEAVY_SEEDS = tuple(range(3, 10))
# Right specs pass whatever the draw (the contract checks compare autograd with itself):
# one seed by default keeps the suite short, the heavy run takes the other nine.
RIGHT_SEEDS = (0,)
DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "complex128": torch.complex128,
          "complex64": torch.complex64}
LOW = ("float16", "bfloat16")  # where a half-precision kernel reads memory stride-blind

pytestmark = pytest.mark.usefixtures("one_thread")


def _seeds(default=SEEDS):
    yield from default
    for seed in (*SEEDS, *HEAVY_SEEDS):  # deselected unless asked for: pytest -m heavy
        if seed not in default:
            yield pytest.param(seed, marks=pytest.mark.heavy)


def _bugs():
    for entry in BROKEN:
        for dtype in entry.dtypes:
            yield pytest.param(entry, dtype, id=f"{entry.name}-{dtype}")
        if entry.dtypes == BOTH:  # and in half precision
            for dtype in LOW:
                yield pytest.param(entry, dtype, id=f"{entry.name}-{dtype}")


@pytest.mark.parametrize("seed", list(_seeds()))
@pytest.mark.parametrize(("entry", "dtype"), list(_bugs()))
def test_contract_bug_is_caught(entry: Broken, dtype: str, seed: int) -> None:
    report = verify(entry.spec, checks=[entry.check], dtype=DTYPES[dtype], seed=seed,
                    settings=NO_SHRINK)
    assert not report.passed, f"not caught by {entry.check} in {dtype} (seed {seed}): " \
                              f"{entry.bug}\n{report}"
    headline = str(report).splitlines()[0]
    assert headline.startswith(entry.headline), headline
    assert f"in spec {entry.name!r} [{entry.check}, cpu, {dtype}]" in headline, headline
    assert report.examples <= CHECK_INFO[entry.check].max_examples + len(entry.spec.examples)


def _twins():
    for entry in BROKEN:
        for dtype in (*entry.dtypes, *(LOW if entry.dtypes == BOTH else ())):
            for check in CONTRACT_CHECKS:
                yield pytest.param(entry.twin, check, dtype, entry.check == check,
                                   id=f"{entry.twin.name}-{check}-{dtype}")


@pytest.mark.parametrize("seed", list(_seeds(RIGHT_SEEDS)))
@pytest.mark.parametrize(("twin", "check", "dtype", "judged"), list(_twins()))
def test_twin_passes(twin: Spec, check: str, dtype: str, judged: bool, seed: int) -> None:
    report = verify(twin, checks=[check], dtype=DTYPES[dtype], seed=seed, settings=NO_SHRINK)
    assert report.passed, f"false positive on a right twin, seed {seed}:\n{report}"
    if judged:  # the check that catches the bug judged the twin: it was not skipped
        assert check not in report.skipped, report.skipped


def _signatures():
    for spec in SIGNATURES:
        for dtype in (*spec.dtypes, *(LOW if "float32" in spec.dtypes else ())):
            for check in CONTRACT_CHECKS:
                yield pytest.param(spec, check, dtype, id=f"{spec.name}-{check}-{dtype}")


@pytest.mark.parametrize("seed", list(_seeds(RIGHT_SEEDS)))
@pytest.mark.parametrize(("spec", "check", "dtype"), list(_signatures()))
def test_every_signature_passes(spec: Spec, check: str, dtype: str, seed: int) -> None:
    report = verify(spec, checks=[check], dtype=DTYPES[dtype], seed=seed, settings=NO_SHRINK)
    assert report.passed, f"false positive, seed {seed}:\n{report}"
    assert report.examples > report.discarded, str(report)


def test_the_layout_is_named() -> None:
    """The failure says which tensor, in which layout, with which strides."""
    entry = next(e for e in BROKEN if e.name == "view_grad")
    report = verify(entry.spec, checks=["layouts"], seed=0, settings=NO_SHRINK)
    headline = str(report).splitlines()[0]
    assert ": cotangent transposed, strides (1, " in headline, headline
    assert "backward raised RuntimeError: view size is not compatible" in headline, headline


def test_a_forward_that_needs_contiguous_inputs_is_named() -> None:
    spec = Spec(name="forward_views", forward=lambda x: x.view(-1).sin(),
                inputs={"x": Input(("m", "n"))}, dims={"m": (2, 4), "n": (2, 4)})
    headline = str(verify(spec, checks=["layouts"], seed=0, settings=NO_SHRINK)).splitlines()[0]
    assert headline.startswith("The forward fails for a layout"), headline
    assert "input 'x' transposed, strides" in headline, headline


def test_the_vmap_failure_gives_the_fix() -> None:
    class NoVmapRule(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x * 2

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

        @staticmethod
        def jvp(ctx, x_t):
            return x_t * 2

    spec = Spec(name="no_vmap_rule", forward=lambda x: NoVmapRule.apply(x),
                inputs={"x": Input(("n",))})
    report = verify(spec, checks=["batched"], seed=0, settings=NO_SHRINK)
    headline = str(report).splitlines()[0]
    assert headline.startswith("The forward cannot run under vmap"), headline
    assert "generate_vmap_rule = True" in headline, headline
    assert "leaves 'batched' out of its checks" in headline, headline
    opted_out = Spec(name="no_vmap_rule", forward=lambda x: NoVmapRule.apply(x),
                     inputs={"x": Input(("n",))},
                     checks=[c for c in CHECKS if c != "batched"])
    assert verify(opted_out, seed=0, settings=NO_SHRINK, max_examples=3,
                  checks=["layouts", "undefined"]).passed


def test_no_grad_left_on_inputs() -> None:
    def leaves_grad(x):
        with torch.enable_grad():
            y = x.detach().requires_grad_()
            (y**2).sum().backward()  # a .backward() inside: y.grad, not x.grad ...
        x.grad = y.grad  # ... and a forward that hands it over
        return x**2

    spec = Spec(name="grad_left", forward=leaves_grad, inputs={"x": Input(("n",))})
    headline = str(verify(spec, checks=["layouts"], seed=0, settings=NO_SHRINK)).splitlines()[0]
    assert headline.startswith(".grad was left on input 'x'"), headline


def test_the_contract_checks_are_registered() -> None:
    for name in CONTRACT_CHECKS:
        assert name in CHECKS
        assert CHECK_INFO[name].max_examples is not None


@pytest.mark.parametrize("check", CONTRACT_CHECKS)
def test_cuda_items_skip_without_cuda_and_pass_with_it(check: str) -> None:
    spec = next(s for s in SIGNATURES if s.name == "sig_function_two_outputs")
    report = verify(spec, checks=[check], device="cuda", seed=0, settings=NO_SHRINK)
    if not torch.cuda.is_available():
        assert report.passed and report.skipped == {check: "CUDA not available"}, str(report)
        return
    assert report.passed and check not in report.skipped, str(report)
    bug = next(e for e in BROKEN if e.check == check)
    assert not verify(bug.spec, checks=[check], device="cuda", seed=0, settings=NO_SHRINK).passed


def test_a_broadcast_gradient_autograd_would_sum_down_is_named() -> None:
    class AddRow(torch.autograd.Function):
        """x (m, n) + b (n,); backward returns grad itself, unreduced, for b."""

        @staticmethod
        def forward(ctx, x, b):
            return x + b

        @staticmethod
        def backward(ctx, grad):
            return grad, grad  # autograd sums the second down to (n,) silently

    spec = Spec(name="unreduced", forward=lambda x, b: AddRow.apply(x, b),
                inputs={"x": Input(("m", "n")), "b": Input(("n",))}, dims={"m": (2, 4)})
    headline = str(verify(spec, checks=["layouts"], seed=0, settings=NO_SHRINK)).splitlines()[0]
    assert headline.startswith("The backward breaks autograd's contract"), headline
    assert "AddRow.backward returned, as gradient 1, shape (" in headline, headline
    assert "autograd sums it down silently" in headline, headline


class _Scale(torch.autograd.Function):
    """alpha * x for a Python float alpha before the tensor: the float has no graph edge."""

    @staticmethod
    def forward(ctx, alpha, x, lower):
        ctx.alpha, ctx.lower = alpha, lower
        return alpha * x

    @staticmethod
    def backward(ctx, grad):
        gradient = ctx.alpha * grad
        return None, gradient.float() if ctx.lower else gradient, None


@pytest.mark.parametrize("lower", [False, True], ids=["right", "float32-gradient"])
def test_a_non_tensor_argument_before_the_tensors_keeps_the_pairing(lower: bool) -> None:
    spec = Spec(name="scale", forward=lambda x: _Scale.apply(2.0, x, lower),
                inputs={"x": Input(("n",))})
    report = verify(spec, checks=["layouts"], seed=0, settings=NO_SHRINK)
    assert report.passed is not lower, str(report)
    if lower:
        assert "_Scale.backward returned, as gradient 1, float32 for a float64 input" in \
            str(report).splitlines()[0], str(report)
