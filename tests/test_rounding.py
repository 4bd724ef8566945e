"""The simulated rounding of the noise model: what it moves, by how much, and what it leaves."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from harness import CHECKS, Input, Spec
from harness.checks.case import Case
from harness.errors import Fault
from harness.numerics import noise
from harness.numerics.allowance import Allowance
from harness.numerics.compare import FAR_BEYOND, judged
from harness.numerics.rounding import SimulatedRounding, rounds, treatment, unit_roundoff
from harness.spec.examples import Example

UNIT_ROUNDOFF = unit_roundoff(torch.float32)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(3))
def test_a_rounding_op_moves_by_at_most_a_unit_roundoff(seed: int) -> None:
    x = torch.linspace(1, 2, 100, dtype=torch.float64)
    with SimulatedRounding(UNIT_ROUNDOFF, _generator(seed)):
        moved = torch.exp(x)
    relative = (moved / torch.exp(x) - 1).abs()
    assert 0 < float(relative.max()) <= UNIT_ROUNDOFF * (1 + 1e-9)
    assert float(relative.mean()) > UNIT_ROUNDOFF / 4  # not rounding-free in disguise


def test_selections_and_exact_ops_are_left_alone() -> None:
    x = torch.tensor([3.0, -1.0, 2.0, 2.5], dtype=torch.float64, requires_grad=True)
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        top = x.max()
        (gradient,) = torch.autograd.grad(top, x)
        values = torch.sort(x).values
        copies = (x.clone(), x.abs(), torch.where(x > 0, x, -x), torch.relu(x))
    assert float(top.detach()) == 3.0
    # max's backward compares x with max(x): had max moved, the gradient would be 0 or NaN
    assert gradient[1:].tolist() == [0.0, 0.0, 0.0]
    assert abs(float(gradient[0]) - 1) <= 2 * UNIT_ROUNDOFF  # it divides and multiplies
    assert values.tolist() == [-1.0, 2.0, 2.5, 3.0]
    for copy, exact in zip(copies, (x, x.abs(), x.abs(), x.relu()), strict=True):
        assert torch.equal(copy, exact)


def test_views_are_left_alone_and_in_place_arithmetic_rounds_where_it_stands() -> None:
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        view = x.view(3)
        x.add_(0.5)  # a hand-written backward's grad_x += ...: rounds like x + 0.5
        copied = torch.empty(3, dtype=torch.float64).copy_(x)  # moves values, exactly
    assert view.data_ptr() == x.data_ptr() and torch.equal(view, x)
    exact = torch.tensor([1.5, 2.5, 3.5], dtype=torch.float64)
    assert not torch.equal(x, exact)
    assert ((x - exact).abs() <= UNIT_ROUNDOFF * exact).all()
    assert torch.equal(copied, x)


def test_an_in_place_accumulation_rounds_by_the_magnitudes_it_sums() -> None:
    """index_add_ of 1.8 and -1.6 into one row: the error scales with 3.4, not with 0.2."""
    sources = torch.tensor([[1.8], [-1.6]], dtype=torch.float64)
    errors = []
    for seed in range(20):
        with SimulatedRounding(UNIT_ROUNDOFF, _generator(seed)):
            out = torch.zeros(1, 1, dtype=torch.float64).index_add_(
                0, torch.tensor([0, 0]), sources)
        errors.append(abs(float(out) - 0.2))
    assert max(errors) <= UNIT_ROUNDOFF * 3.4
    assert max(errors) > UNIT_ROUNDOFF * 0.2


def test_other_dtypes_are_left_alone() -> None:
    x = torch.linspace(1, 2, 10, dtype=torch.float32)
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        assert torch.equal(torch.exp(x), torch.exp(x.clone()))


@pytest.mark.parametrize(("op", "expected"), [
    (torch.ops.aten.mul.Tensor, True),
    (torch.ops.aten.sum.dim_IntList, True),
    (torch.ops.aten.mm.default, True),
    (torch.ops.aten._softmax_backward_data.default, True),
    (torch.ops.aten.max.default, False),
    (torch.ops.aten.sort.default, False),
    (torch.ops.aten.where.self, False),
    (torch.ops.aten.view.default, False),
    (torch.ops.aten.add_.Tensor, True),
    (torch.ops.aten.index_add_.default, True),
    (torch.ops.aten.copy_.default, False),
    (torch.ops.aten.index_put_.default, False),
    (torch.ops.aten.fill_.Scalar, False),
])
def test_which_ops_round(op, expected: bool) -> None:
    assert rounds(op) is expected


@pytest.mark.parametrize(("op", "how"), [
    (torch.ops.aten.exp.default, "relative"),
    (torch.ops.aten.mm.default, "accumulation"),
    (torch.ops.aten.convolution_backward.default, "accumulation"),
    (torch.ops.aten.gelu_backward.default, "decomposed"),
    (torch.ops.aten.softplus_backward.default, "decomposed"),  # not tagged pointwise
    (torch.ops.aten._cdist_forward.default, "relative"),  # no decomposition
    (torch.ops.aten.upsample_nearest2d.default, "relative"),  # unknown: taken to round
    (torch.ops.aten.amax.default, "exact"),
    (torch.ops.aten.cat.default, "exact"),
])
def test_how_each_kind_of_op_rounds(op, how: str) -> None:
    assert treatment(op) == how


def test_an_accumulation_rounds_at_the_size_of_what_it_adds() -> None:
    """A convolution's bias gradient sums the cotangent: 0 + ... cancels, each term rounds."""
    grad = torch.tensor([[[1e8, 1.0, -1e8]]], dtype=torch.float64)
    x, w = torch.ones(1, 1, 3, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64)
    exact = torch.ops.aten.convolution_backward(grad, x, w, [1], [1], [0], [1], False, [0], 1,
                                                [False, False, True])[2]
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        moved = torch.ops.aten.convolution_backward(grad, x, w, [1], [1], [0], [1], False,
                                                    [0], 1, [False, False, True])[2]
    assert float(exact) == 1.0
    assert 0.1 * UNIT_ROUNDOFF * 2e8 < abs(float(moved - exact)) <= UNIT_ROUNDOFF * (2e8 + 1)


def test_a_composite_rounds_inside_where_it_cancels() -> None:
    """GELU's backward at -1.4: Phi(x) = (1 + erf(x / sqrt 2)) / 2 cancels, then x phi(x)."""
    x = torch.tensor([-1.3992871046066284], dtype=torch.float64)
    grad = torch.ones_like(x)
    exact = torch.ops.aten.gelu_backward(grad, x)
    spread = 0.0
    for seed in range(4):
        with SimulatedRounding(UNIT_ROUNDOFF, _generator(seed)):
            spread = max(spread, float((torch.ops.aten.gelu_backward(grad, x) - exact).abs()))
    assert spread > 2 * UNIT_ROUNDOFF * float(exact.abs())  # more than one rounding at the end


@pytest.mark.filterwarnings("ignore:.*torch.jit.script:DeprecationWarning")  # forward AD's
def test_forward_mode_zero_tangents_are_left_alone() -> None:
    import torch.autograd.forward_ad as forward_ad

    x = torch.tensor([0.3, -0.7], dtype=torch.float64)
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()), forward_ad.dual_level():
        dual = forward_ad.make_dual(x, torch.ones_like(x))
        tangent = forward_ad.unpack_dual(dual * x.new_tensor(2.0) + x).tangent
    assert torch.allclose(tangent, torch.full_like(x, 2.0), rtol=1e-6)


STD = Spec(name="std", forward=lambda x: torch.std(x), inputs={"x": Input(("n",))})


@pytest.mark.parametrize("seed", range(20))
def test_sensitivity_covers_a_cancelling_intermediate(seed: int) -> None:
    """float32 std of [-10, -9.96]: the mean's rounding error (half an ulp of 10) moves
    the deviations by 2.4e-5 relative, and with them torch's gradient. Moving the inputs
    by an ulp each does not reproduce it; simulated rounding does."""
    point = torch.tensor([-10.0, -9.960000038146973], dtype=torch.float64)
    example = Example(dims={"n": 2}, values={"x": point}, cotangent_seed=seed)
    case = Case(STD, example, "cpu", torch.float32)
    exact = float(case.cotangents[0]) * torch.tensor([-1.0, 1.0], dtype=torch.float64) / 2**0.5
    error = (case.autograd["x"].double() - exact).abs()
    allowed = case.allowance(exact).total + case.rounding("autograd")["x"]
    assert bool((error <= allowed).all()), (error, allowed)


def _refuses_dispatch_modes(x: torch.Tensor) -> torch.Tensor:
    """Like a compiled kernel that a Python dispatch mode cannot enter."""
    if _get_current_dispatch_mode() is not None:
        raise RuntimeError("no Python dispatch here")
    return torch.exp(x)


def test_a_forward_that_refuses_simulation_keeps_the_neighbour_model() -> None:
    spec = Spec(name="compiled", forward=_refuses_dispatch_modes, inputs={"x": Input(("n",))})
    example = Example(dims={"n": 3}, values={"x": torch.tensor([0.5, 1.0, 2.0],
                                                               dtype=torch.float64)},
                      cotangent_seed=0)
    rounding = Case(spec, example, "cpu", torch.float32).rounding("autograd")["x"]
    assert bool((rounding > 0).all())  # exp's neighbours differ: the spread is real


def test_where_most_samples_fail_the_spread_is_taken_over_those_that_came() -> None:
    """A forward no dispatch mode can enter, whose code raises at the neighbouring points
    not moved down in every element (most of them): the fourth largest of the few changes
    that came would be none; the spread is taken over those."""
    x = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    came = []

    def quantity(point, dtype):
        if _get_current_dispatch_mode() is not None:
            raise Fault("no Python dispatch here")  # as evaluate.call reports it
        if not bool((point["x"] <= x).all()):
            raise Fault("raises an ulp away")
        came.append(point["x"])
        return {"y": point["x"].exp()}

    spread = noise.NoiseModel({"x": x}, torch.float64, seed=0).measure(quantity)["y"]
    moved = (len(came) - 1) // len(noise.SIMULATED_FLOAT64)  # the base once, then each
    # precision moves to the same neighbours
    assert 0 < moved < noise.SPREAD_RANK, moved
    assert bool((spread > 0).all()), spread


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_measure_draws_each_run_once_and_alike_whatever_came_first(dtype) -> None:
    """The whole measure after its first run evaluates only the runs not yet drawn (the
    base and the first run are kept, in float64 for both simulated precisions), and gives
    what a whole measure alone gives."""
    calls = []

    def quantity(point, dtype_):
        calls.append(dtype_)
        return {"y": (point["x"].exp() - 1).log1p()}

    x = torch.tensor([1e-3, 0.5, 3.0], dtype=dtype)
    model = noise.NoiseModel({"x": x}, dtype, seed=7)
    first = model.measure(quantity, runs=1)
    first_calls = len(calls)
    whole = model.measure(quantity)
    precisions = 1 if dtype == torch.float32 else len(noise.SIMULATED_FLOAT64)
    assert first_calls == 1 + precisions  # one float64 base, one run per precision
    neighbours = 2 * noise.ROUNDED_RUNS + 1 if dtype == torch.float32 else 0
    assert len(calls) - first_calls == precisions * (noise.ROUNDED_RUNS - 1) + neighbours
    alone = noise.NoiseModel({"x": x}, dtype, seed=7).measure(quantity)
    assert torch.equal(whole["y"], alone["y"])
    assert bool((first["y"] > 0).any())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_spread_is_the_kth_largest_change_over_every_sample(dtype) -> None:
    """Per element, the SPREAD_RANK-th largest change over ROUNDED_RUNS samples of each kind
    (Monte Carlo runs; below float64, moved inputs in float64 and in the dtype), the same
    in a second model with the same seed."""
    def quantity(point, dtype_):
        return {"y": torch.softmax(point["x"], -1) * point["x"].cos()}

    x = torch.tensor([6.0, 0.0, 0.5, -2.0, 1e-3], dtype=dtype)
    model = noise.NoiseModel({"x": x}, dtype, seed=3)
    measured = model.measure(quantity)
    again = noise.NoiseModel({"x": x}, dtype, seed=3).measure(quantity)
    assert torch.equal(measured["y"], again["y"])
    spreads = []
    for roundoff in ((unit_roundoff(dtype),) if dtype == torch.float32
                     else noise.SIMULATED_FLOAT64):
        changes = [(sample["y"] - base["y"]).abs() * scale for base, samples, scale
                   in model._runs(quantity, roundoff, True, noise.ROUNDED_RUNS)
                   for sample in samples]
        kinds = 3 if dtype == torch.float32 else 1
        assert len(changes) == kinds * noise.ROUNDED_RUNS
        ranked = torch.stack(changes).sort(dim=0, descending=True).values
        spreads.append(ranked[noise.SPREAD_RANK - 1])
    assert torch.equal(measured["y"], noise.NOISE_FACTOR * torch.stack(spreads).amin(0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_difference_far_beyond_the_kept_samples_fails_on_them_alone(dtype) -> None:
    """A miss FAR_BEYOND times past what the first KEPT_RUNS samples of each kind allow is
    judged on those (a quarter of the whole measure's evaluations); one within that reach
    of them pays for every sample."""
    calls = []

    def quantity(point, dtype_):
        calls.append(dtype_)
        return {"y": torch.softmax(point["x"], -1) * point["x"].cos()}

    x = torch.tensor([6.0, 0.0, 0.5, -2.0, 1e-3], dtype=dtype)
    expected = quantity({"x": x.double()}, torch.float64)["y"]

    def measured_by(model):
        return lambda runs: {"rounding": model.measure(quantity, runs=runs)["y"]}

    kept = noise.NoiseModel({"x": x}, dtype, seed=3).measure(quantity, runs=noise.KEPT_RUNS)
    calls.clear()
    far = expected + 2 * FAR_BEYOND * kept["y"]
    model = noise.NoiseModel({"x": x}, dtype, seed=3)
    assert judged(far, expected, Allowance(), measured_by(model)).mismatched == 5
    precisions = 1 if dtype == torch.float32 else len(noise.SIMULATED_FLOAT64)
    # the float64 base and the kept Monte Carlo runs; below float64, the base in the dtype
    # and the first neighbours in float64 and in the dtype too
    neighbours = 1 + 2 * noise.KEPT_RUNS if dtype == torch.float32 else 0
    assert len(calls) == 1 + precisions * noise.KEPT_RUNS + neighbours
    calls.clear()
    near = expected + 2 * kept["y"]  # past the kept samples' allowance, within its reach
    judged(near, expected, Allowance(), measured_by(noise.NoiseModel({"x": x}, dtype, seed=3)))
    assert len(calls) >= 1 + precisions * noise.ROUNDED_RUNS


def _saturated_softmax() -> tuple[Spec, Example]:
    """A stress run's false positive: row [6, 0, 0, 0] of a 6 x 4 softmax, in float32. Its
    gradient at (3, 0) cancels to 0.0064 (the cotangent minus sum(grad * s), s = 0.993), and
    float32 errs there by 2.7e-7; the largest change of four runs of each kind was 1.2e-8,
    so the allowance was 1.3e-7."""
    spec = Spec(name="softmax", forward=lambda x: torch.softmax(x, -1),
                inputs={"x": Input(["m", "n"])},
                backward={"x": lambda grad, result:
                          result * (grad - (grad * result).sum(-1, keepdim=True))})
    x = torch.zeros(6, 4, dtype=torch.float64)
    x[3, 0] = 6.0
    return spec, Example(dims={"m": 6, "n": 4}, values={"x": x}, cotangent_seed=839)


def test_four_samples_that_all_came_out_small_no_longer_fail_a_right_gradient(
        monkeypatch) -> None:
    spec, example = _saturated_softmax()
    check = CHECKS["finite_difference"]
    assert check.run(Case(spec, example, "cpu", torch.float32)) == []
    monkeypatch.setattr(noise, "ROUNDED_RUNS", 4)  # the model before: the largest of four
    monkeypatch.setattr(noise, "SPREAD_RANK", 1)
    (failure,) = check.run(Case(spec, example, "cpu", torch.float32))
    assert "2.70535e-07 at index (3, 0)" in failure.details[1], failure.details


@pytest.mark.parametrize("mode", ["replicate", "reflect"])
def test_paddings_backward_rounds_at_the_size_of_the_cotangents_it_sums(mode: str) -> None:
    """pad(x, (0, 2)): the last element (replicate) or the one before it (reflect) is
    copied to the padding, so its gradient sums cotangents 1e8 + 1 - 1e8, each of which
    rounds: u * 2e8, not u * |1| (nn.functional.pad.replicate_negative in float32 erred
    by 8.5e-7 relative where the result cancelled)."""
    x = torch.zeros(1, 1, 3, dtype=torch.float64, requires_grad=True)
    grad = torch.tensor([[[0.0, 0.0, 1e8, 1.0, -1e8]]], dtype=torch.float64)
    if mode == "reflect":  # x[1] goes to output 1 and to the padding's output 3
        grad = torch.tensor([[[0.0, 1e8, 0.0, -1e8, 1.0]]], dtype=torch.float64)
    position = 2 if mode == "replicate" else 1

    def gradient() -> torch.Tensor:
        (torch.nn.functional.pad(x, (0, 2), mode=mode) * 1).backward(grad)
        value, x.grad = x.grad[0, 0, position].detach().clone(), None
        return value

    exact = gradient()
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        moved = gradient()
    backward = {"replicate": torch.ops.aten.replication_pad1d_backward,
                "reflect": torch.ops.aten.reflection_pad1d_backward}[mode]
    assert treatment(backward.default) == "accumulation"
    assert abs(float(moved - exact)) > 0.1 * UNIT_ROUNDOFF * 2e8


@pytest.mark.parametrize("lookup", ["index", "embedding", "unsafe_put"])
def test_indexings_backward_rounds_at_the_size_of_the_cotangents_it_sums(lookup) -> None:
    """x[[0, 0, 0]]: the backward puts the cotangents 1e8, 1, -1e8 at index 0 with
    accumulate=True, which adds (u * 2e8); without accumulate index_put only writes. An
    embedding's backward, decomposed, adds them by _unsafe_masked_index_put_accumulate."""
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    grad = torch.tensor([1e8, 1.0, -1e8], dtype=torch.float64)
    index = torch.tensor([0, 0, 0])

    def gradient() -> torch.Tensor:
        if lookup == "index":
            x[index].backward(grad)
        elif lookup == "unsafe_put":  # what decomposed indexing backwards call
            put = torch.ops.aten._unsafe_index_put(torch.zeros(3, dtype=torch.float64),
                                                   [index], grad, True)
            return put[0].clone()
        else:
            torch.nn.functional.embedding(index, x.view(3, 1)).backward(grad.view(3, 1))
        value, x.grad = x.grad[0].detach().clone(), None
        return value

    exact = gradient()
    with SimulatedRounding(UNIT_ROUNDOFF, _generator()):
        moved = gradient()
        written = torch.zeros(3, dtype=torch.float64).index_put((torch.tensor([1]),), grad[1:2])
    assert float(exact) == 1.0
    assert 0.1 * UNIT_ROUNDOFF * 2e8 < abs(float(moved - exact)) <= UNIT_ROUNDOFF * (2e8 + 1)
    assert written.tolist() == [0.0, 1.0, 0.0]  # a plain write stays exact
