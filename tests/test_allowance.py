"""Every allowance term, proved needed: with it a right gradient passes, without it the same
gradient fails (the term is switched off with monkeypatch).

Each case runs explicit examples only (``max_examples=0``), so the figures are fixed.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function

from harness import Input, Spec, verify
from harness.checks import case as case_module
from harness.checks import gradients as gradient_checks
from harness.checks.case import Case
from harness.checks.oracle import Oracle
from harness.errors import AllowanceError
from harness.numerics import rounding
from harness.numerics.allowance import Allowance, Tolerance
from harness.numerics.compare import compare

EPS64 = torch.finfo(torch.float64).eps


VERDICTS = ("Gradient of", "Output tangent is wrong", "Forward disagrees")


def _passes(spec: Spec, check: str, dtype: torch.dtype = torch.float64) -> bool:
    """Whether ``check`` passes the spec's explicit examples; a failure must be a verdict
    on a gradient (not a fault of the spec, nor examples all discarded)."""
    report = verify(spec, checks=[check], dtype=dtype, max_examples=0)
    assert report.examples > report.discarded, str(report)
    assert report.passed or str(report).startswith(VERDICTS), str(report)
    return report.passed


@pytest.fixture
def without_rounding(monkeypatch: pytest.MonkeyPatch):
    """without_rounding(*sources): Case.rounding reports no noise for those sources."""
    measured = Case.rounding

    def switch_off(*sources: str) -> None:
        def rounding_of(self, source, quantity=None, **options):
            noise = measured(self, source, quantity, **options)
            if source in sources:
                return {key: torch.zeros_like(value) for key, value in noise.items()}
            return noise

        monkeypatch.setattr(Case, "rounding", rounding_of)

    return switch_off


# --- the terms of Allowance itself ------------------------------------------------------------


def test_terms_add_up_and_the_message_names_them_largest_first() -> None:
    allowance = Allowance.of(tolerance=torch.tensor([1.0, 2.0]), oracle=0.5)
    allowance = allowance.plus(oracle=0.25, rounding=torch.tensor([0.0, 4.0]))
    assert allowance.total.tolist() == [1.75, 6.75]
    assert allowance.breakdown((1,)) == "rounding 4 + tolerance 2 + oracle 0.75"
    assert allowance.breakdown((0,)) == "tolerance 1 + oracle 0.75"


def test_a_projection_judges_a_sum_along_a_direction() -> None:
    allowance = Allowance.of(tolerance=torch.tensor([1.0, 2.0]), oracle=0.5)
    projected = allowance.projected(torch.tensor([3.0, -1.0]))
    assert dict((name, float(value)) for name, value in projected) == {
        "tolerance": 5.0, "oracle": 2.0}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_a_non_finite_or_negative_term_is_a_harness_error_never_a_verdict(bad: float) -> None:
    with pytest.raises(AllowanceError, match="harness bug: the allowance term 'rounding'"):
        Allowance.of(rounding=torch.tensor([1.0, bad]))


# --- the floor ----------------------------------------------------------------------------------


def test_the_floor_is_two_ulps_of_each_element() -> None:
    expected = torch.tensor([1.0, -1e-20, 3e5], dtype=torch.float64)
    floor = Tolerance.of(torch.float64).floor(expected)
    one_ulp = expected + expected.abs() * EPS64
    three_ulps = expected + 3 * expected.abs() * EPS64
    assert compare(one_ulp, expected, floor) is None
    mismatch = compare(three_ulps, expected, floor)
    assert mismatch is not None and mismatch.mismatched == 3


def test_a_spec_raises_the_floor_with_tolerances_and_atol_is_absolute() -> None:
    def spec(tolerances=None):
        return Spec(name="approximate", forward=lambda x: x**2, inputs={"x": Input(["n"])},
                    backward={"x": lambda grad, x: grad * 2 * x * (1 + 1e-5) + 1e-9},
                    examples=[{"x": [0.5, -3.0, 1e-6]}], tolerances=tolerances)

    assert not _passes(spec(), "analytic")
    assert not _passes(spec({"float64": {"rtol": 1e-4}}), "analytic")  # 1e-9 at x = 1e-6
    assert _passes(spec({"float64": {"rtol": 1e-4, "atol": 1e-8}}), "analytic")


def test_underflow_values_carry_no_relative_precision() -> None:
    expected = torch.tensor([1e-309], dtype=torch.float64)  # subnormal
    actual = torch.tensor([2e-309], dtype=torch.float64)
    floor = Tolerance.of(torch.float64).floor(expected)
    assert compare(actual, expected, floor) is None
    without = Allowance(tuple((n, v) for n, v in floor if n != "underflow"))
    assert compare(actual, expected, without) is not None


class NondeterministicSquare(Function):
    """x^2 whose backward adds up to 1e-9 of noise, as atomics may."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x + 1e-9 * (2 * torch.rand_like(x) - 1)


def test_nondet_tol_admits_a_nondeterministic_backward() -> None:
    def spec(nondet_tol: float) -> Spec:
        return Spec(name="atomics", forward=lambda x: NondeterministicSquare.apply(x),
                    inputs={"x": Input(["n"])}, backward={"x": lambda grad, x: grad * 2 * x},
                    examples=[{"x": [0.5, -3.0, 2.0]}], nondet_tol=nondet_tol)

    torch.manual_seed(0)
    assert not _passes(spec(0.0), "analytic")
    assert _passes(spec(1e-8), "analytic")


# --- measured rounding of each source ------------------------------------------------------------

# x + 1e8 - 1e8 is x, rounded at 1e8 eps = 1.5e-8: a cancellation only the noise model sees
SHIFTED = {"x": Input(["n"], low=-1, high=1)}
POINT = [{"x": [0.3, -0.7, 0.01]}]


def test_the_formulas_measured_rounding(without_rounding) -> None:
    spec = Spec(name="shifted_formula", forward=lambda x: x * x / 2, inputs=SHIFTED,
                backward={"x": lambda grad, x: grad * ((x + 1e8) - 1e8)}, examples=POINT)
    assert _passes(spec, "analytic")
    without_rounding("formula")
    assert not _passes(spec, "analytic")


def test_autograds_measured_rounding(without_rounding) -> None:
    spec = Spec(name="shifted_forward", forward=lambda x: ((x + 1e8) - 1e8) * x / 2,
                inputs=SHIFTED, backward={"x": lambda grad, x: grad * x}, examples=POINT)
    assert _passes(spec, "analytic")
    without_rounding("autograd")
    assert not _passes(spec, "analytic")


def test_autograds_measured_rounding_in_float32(without_rounding) -> None:
    """float32 std of [-10, -9.96]: the mean rounds and the deviations cancel."""
    spec = Spec(name="std", forward=lambda x: torch.std(x), inputs={"x": Input(["n"])},
                backward={"x": lambda grad, x, result, n: grad * (x - x.mean()) / (
                    (n - 1) * result)}, examples=[{"x": [-10.0, -9.960000038146973]}])
    assert _passes(spec, "finite_difference", torch.float32)
    without_rounding("autograd")
    assert not _passes(spec, "finite_difference", torch.float32)


def test_the_jvp_formulas_and_forward_modes_measured_rounding(without_rounding) -> None:
    formula = Spec(name="shifted_jvp", forward=lambda x: x * x / 2, inputs=SHIFTED,
                   jvp=lambda x, x_t: ((x + 1e8) - 1e8) * x_t, examples=POINT)
    tangent = Spec(name="shifted_tangent", forward=lambda x: ((x + 1e8) - 1e8) * x / 2,
                   inputs=SHIFTED, jvp=lambda x, x_t: x * x_t, examples=POINT)
    assert _passes(formula, "forward_mode") and _passes(tangent, "forward_mode")
    without_rounding("jvp")
    assert not _passes(formula, "forward_mode")
    without_rounding("tangent")
    assert not _passes(tangent, "forward_mode")


def test_an_accumulation_errs_at_the_size_of_what_it_adds(monkeypatch) -> None:
    """sum([1e16, 1, -1e16]) rounds to 0 in torch's order and is 1 in the formula's:
    only an error of u * sum |x|, not u * |sum x|, allows for that."""
    spec = Spec(name="cancelling_sum", forward=lambda x: x.sum() ** 2 / 2,
                inputs={"x": Input([3], low=-1e16, high=1e16)},
                backward={"x": lambda grad, x: grad * (x[1] + (x[0] + x[2])).expand(3)},
                examples=[{"x": [1e16, 1.0, -1e16]}])
    assert _passes(spec, "analytic")
    monkeypatch.setattr(rounding, "ACCUMULATIONS", frozenset())
    rounding.treatment.cache_clear()
    try:
        assert not _passes(spec, "analytic")
    finally:
        monkeypatch.undo()
        rounding.treatment.cache_clear()


def test_a_fourier_transform_errs_at_the_size_of_every_input(monkeypatch) -> None:
    """fft(x).real of 128 values near 5 in float32: every output of the backward's
    transform sums all 128 cotangents, and an output far smaller than that sum still
    rounds at it — u log2(n) sum |x|, not u times itself."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(128, generator=generator, dtype=torch.float64) + 5).tolist()
    spec = Spec(name="fft_real", forward=lambda x: torch.fft.fft(x).real,
                inputs={"x": Input([128])}, examples=[{"x": x}])
    assert _passes(spec, "finite_difference", torch.float32)
    monkeypatch.setattr(rounding, "TRANSFORMS", frozenset())
    rounding.treatment.cache_clear()
    try:
        assert not _passes(spec, "finite_difference", torch.float32)
    finally:
        monkeypatch.undo()
        rounding.treatment.cache_clear()


# --- the oracle's error --------------------------------------------------------------------------


def test_the_oracles_error_bound(monkeypatch) -> None:
    spec = Spec(name="sin50", forward=lambda x: torch.sin(50 * x), inputs={"x": Input(["n"])},
                examples=[{"x": [0.3, -0.71, 0.05, 0.9]}])
    assert _passes(spec, "finite_difference")
    for module in (case_module, gradient_checks):
        monkeypatch.setattr(module, "ORACLE_ERROR_FACTOR", 0.0)
    assert not _passes(spec, "finite_difference")


LOGCOSH = Spec(name="logcosh", forward=lambda d: torch.log(torch.cosh(d)).mean(),
               inputs={"d": Input(("n",))}, examples=[{"d": [1e-5]}, {"d": [2e-6, -3e-6]}])


def test_the_oracles_error_counts_the_forwards_measured_rounding(monkeypatch) -> None:
    """log(cosh(d)) near 0 rounds cosh at 1e-16 before log cancels it: the forward
    rounds far above its own size, and so do finite differences of it."""
    assert _passes(LOGCOSH, "finite_difference")
    unmeasured = Oracle._term_sizes
    monkeypatch.setattr(Oracle, "_term_sizes", lambda self, measured: unmeasured(self, False))
    assert not _passes(LOGCOSH, "finite_difference")


def _tanh_with_one_saturated(r: float) -> Spec:
    """tanh over 40 elements, one at -9 (slope 6e-8, its term in phi 1): a backward that
    errs by r at that element only."""

    class Tanh(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tanh(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            gx = grad * (1 - torch.tanh(x) ** 2)
            gx[0] = gx[0] * (1 + r)
            return gx

    x = [-9.0] + [0.05 * k - 1 for k in range(39)]
    return Spec(name="tanh40", forward=lambda x: Tanh.apply(x),
                inputs={"x": Input([40], low=-9, high=9)}, examples=[{"x": x}])


def test_each_partial_counts_the_rounding_of_the_terms_it_moves(monkeypatch) -> None:
    """Moving one element of an elementwise forward moves one term of phi: the other 39
    terms are the same bit for bit at every step, and their rounding (39 times the
    saturated term's) is no error of that partial. Counting it hides an error of 1e-4
    in the saturated element's gradient."""
    from harness.numerics import richardson

    assert _passes(_tanh_with_one_saturated(0.0), "finite_difference")
    assert not _passes(_tanh_with_one_saturated(1e-4), "finite_difference")
    monkeypatch.setattr(richardson, "_moved_rounding",
                        lambda moved, magnitude, finest: magnitude)
    assert _passes(_tanh_with_one_saturated(1e-4), "finite_difference")


def test_the_steps_own_rounding_errs_by_the_slope_times_it(monkeypatch) -> None:
    """x + t s rounds, so the step taken is off by up to eps |x|: a central difference errs
    by the slope times eps |x| / h. tan at 6.24 (tan 0.04, slope 1) beside a point 3e-3
    from a pole, whose curvature makes the oracle retry with steps 16 times smaller: the
    rounding of the steps, 1e-11 of the slope there, dwarfs that of tan's values."""
    from harness.numerics import richardson

    spec = Spec(name="tan_by_a_pole", forward=lambda x: torch.tan(x),
                inputs={"x": Input(["n"], low=-10, high=10)},
                examples=[{"x": [6.240053349848649, 1.5735470746072688]}])
    assert _passes(spec, "finite_difference")
    monkeypatch.setattr(richardson, "STEP_ROUNDING_ULPS", 0)
    assert not _passes(spec, "finite_difference")


def test_an_output_no_step_moves_still_counts_its_rounding(monkeypatch) -> None:
    """1e17 + x0 at x0 = 1.5 never moves (its ulp is 16), yet depends on x0 with slope 1:
    finite differences see 0 there, and only the unmoved term's rounding over a step of
    x0's whole scale (16 / 1.5 in phi's units) allows for that."""
    from harness.numerics import richardson

    spec = Spec(name="under_an_ulp", forward=lambda x: torch.stack([1e17 + x[0], x[1] ** 2]),
                inputs={"x": Input([2])}, examples=[{"x": [1.5, 0.7]}])
    assert _passes(spec, "finite_difference")
    monkeypatch.setattr(richardson, "_moved_rounding", lambda moved, magnitude, finest: moved)
    assert not _passes(spec, "finite_difference")


def test_a_threshold_the_simulated_rounding_crosses_is_not_rounding(monkeypatch) -> None:
    """floor(2^46 (2x - 1)) at x = 1/2 + 0.15 * 2^-46: Monte Carlo arithmetic at 2^-44
    moves 2x - 1 by up to 8 of the floor's units, at 2^-49 by a quarter — and float64's
    own rounding not at all. The jump the coarse runs see, scaled back, is no rounding of
    float64: each element keeps the smaller of the two precisions' spreads."""
    from harness.numerics import noise

    x = torch.tensor([0.5 + 0.15 * 2.0**-46], dtype=torch.float64)

    def quantity(point, dtype):
        value = point["x"]
        return {"y": torch.floor((2 * value - 1) * 2.0**46) + 3 * value}

    linear = 100 * EPS64 * 3 * float(x)  # what rounding does to 3x, with room
    assert float(noise.NoiseModel({"x": x}, torch.float64, 0).measure(quantity)["y"]) < linear
    monkeypatch.setattr(noise, "SIMULATED_FLOAT64", (2.0**-44, 2.0**-44))
    assert float(noise.NoiseModel({"x": x}, torch.float64, 0).measure(quantity)["y"]) > linear


def test_the_taylor_floor_counts_the_forwards_measured_rounding(monkeypatch) -> None:
    from harness.checks import taylor

    assert _passes(LOGCOSH, "taylor")
    monkeypatch.setattr(taylor, "_phi_noise", lambda case: 0.0)
    assert not _passes(LOGCOSH, "taylor")


# --- the reference's own error ------------------------------------------------------------------


def test_a_low_precision_kernel_may_err_like_its_reference(monkeypatch, without_rounding) -> None:
    """float32 layer norm of [-10, -9.96], against F.layer_norm run in float64."""
    spec = Spec(name="layer_norm", forward=lambda x: torch.nn.functional.layer_norm(x, (2,)),
                inputs={"x": Input(("m", 2))},
                reference=lambda x: torch.nn.functional.layer_norm(x, (2,)),
                examples=[{"x": [[-10.0, -9.960000038146973]]}])
    without_rounding("output", "autograd")
    assert _passes(spec, "reference", torch.float32)
    monkeypatch.setattr(gradient_checks, "REFERENCE_FACTOR", 0.0)
    assert not _passes(spec, "reference", torch.float32)
