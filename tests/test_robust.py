"""Real ops that once made ``verify`` raise: each now gets a verdict, a discard or a clear fault.

Seen on PyTorch's OpInfo samples: empty inputs and outputs, Taylor steps that leave
the op's domain, torch's test suite freezing the backend flags, and a forward that
draws random numbers.
"""

from __future__ import annotations

import pytest
import torch

from harness import CHECKS, Input, Spec, verify
from harness.checks import evaluate
from harness.errors import Fault
from harness.verify import _precise

APPLICABLE = [name for name in CHECKS if name != "devices"]


def _all_checks(spec: Spec, dtype: torch.dtype = torch.float64) -> dict[str, str]:
    """The first line of each check's report (every check must return one, not raise)."""
    lines = {}
    for check in APPLICABLE:
        if CHECKS[check].skip_reason(spec, "cpu", str(dtype).removeprefix("torch.")):
            continue
        report = verify(spec, checks=[check], dtype=dtype, max_examples=0)
        lines[check] = str(report).splitlines()[0]
    return lines


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_empty_inputs_and_outputs_pass(dtype: torch.dtype) -> None:
    spec = Spec(name="empty", forward=lambda x, w: (x * w.sum()).sin(),
                inputs={"x": Input(["n"]), "w": Input([0])},
                backward={"x": lambda grad, x, w: grad * 0.0, "w": lambda grad, w: w},
                examples=[{"x": [], "w": []}, {"x": [1.0, 2.0], "w": []}],
                twice_differentiable=True)
    for check, line in _all_checks(spec, dtype).items():
        assert line.startswith("passed"), (check, line)


def test_taylor_steps_that_leave_the_domain_are_not_a_crash() -> None:
    """cholesky of a barely positive-definite matrix: a step of the input's own size
    leaves the cone and cholesky raises there; the Taylor test takes smaller steps."""
    spec = Spec(name="cholesky", forward=lambda a: torch.linalg.cholesky(a @ a.mT + 1e-3),
                inputs={"a": Input([2, 2])},
                examples=[{"a": [[1.0, 0.999], [0.999, 1.0]]}])
    for check, line in _all_checks(spec).items():
        assert line.startswith("passed"), (check, line)


def test_binary_cross_entropy_near_the_edge_of_its_domain() -> None:
    spec = Spec(name="bce", inputs={"p": Input(["n"], low=0.01, high=0.99),
                                    "y": Input(["n"], low=0.0, high=1.0, requires_grad=False)},
                forward=lambda p, y: torch.nn.functional.binary_cross_entropy(p, y),
                examples=[{"p": [0.99, 0.02, 0.5], "y": [1.0, 0.0, 0.3]}])
    for check, line in _all_checks(spec).items():
        assert line.startswith("passed"), (check, line)


# torch >= 2.9 has per-backend fp32_precision flags (reading the old allow_tf32 ones raises
# once the new ones differ); before, the allow_tf32 flags.
_NEW_TF32_API = hasattr(torch.backends.cudnn, "conv")
_TF32_OFF = ("ieee",) * 3 if _NEW_TF32_API else (False, False)


def _tf32_flags() -> tuple:
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if _NEW_TF32_API:
        return tuple(flag.fp32_precision for flag in (matmul, cudnn.conv, cudnn.rnn))
    return matmul.allow_tf32, cudnn.allow_tf32


def test_verify_after_torch_freezes_its_backend_flags(monkeypatch) -> None:
    """torch.testing._internal calls torch.backends.disable_global_flags(); setting a
    cuDNN flag directly raises after it, the flags() context manager does not."""
    flags = torch.backends.flags_frozen.__globals__  # torch.backends' own module namespace
    monkeypatch.setitem(flags, "__allow_nonbracketed_mutation_flag", True)  # restored after
    torch.backends.disable_global_flags()
    with pytest.raises(RuntimeError, match="disable_global_flags"):
        torch.backends.cudnn.allow_tf32 = False
    before = _tf32_flags()
    with _precise("cuda"):
        assert _tf32_flags() == _TF32_OFF
    assert _tf32_flags() == before
    spec = Spec(name="square", forward=lambda x: x**2, inputs={"x": Input(["n"])})
    assert verify(spec, checks=["finite_difference"], max_examples=3, seed=0).passed


def test_a_forward_that_draws_random_numbers_is_told_so_not_judged() -> None:
    spec = Spec(name="dropout_like", forward=lambda x: x * (torch.rand_like(x) > 0.5),
                inputs={"x": Input(["n"])}, examples=[{"x": [1.0, -2.0, 3.0, 0.5]}])
    report = verify(spec, checks=["finite_difference"], max_examples=0)
    assert not report.passed
    headline = str(report).splitlines()[0]
    assert headline.startswith("The spec's code failed"), headline
    assert "the forward is not deterministic: two runs differ by up to" in headline, headline
    assert "seed its randomness" in headline


def test_a_forward_that_rounds_otherwise_without_a_graph_is_deterministic() -> None:
    """The determinism rerun records the graph as the first run did: torch's nuclear norm
    (an SVD with U and V for the backward) rounds otherwise under no_grad, by 1e-14."""
    x = torch.tensor([[-4.8270, -7.5824, -0.6047, -1.5412, -1.9719],
                      [-4.1460, -5.4215, -4.7842, -4.1508, 7.3808],
                      [5.5761, -8.3157, 4.1776, 2.0474, -4.0760],
                      [-3.0637, -3.3422, -5.4398, 4.4805, 2.6850],
                      [1.1, -0.3, 2.2, 0.7, -6.1]], dtype=torch.float64)
    spec = Spec(name="nuclear_norm", forward=lambda x: torch.linalg.matrix_norm(x, "nuc"),
                inputs={"x": Input((5, 5))}, examples=[{"x": x}])

    def graph_dependent(x):  # the same effect, whatever this torch's SVD does
        return x.sum() * (1 + 1e-15 * torch.is_grad_enabled())

    twin = Spec(name="graph_dependent", forward=graph_dependent, inputs={"x": Input((3,))},
                examples=[{"x": [1.0, 2.0, 3.0]}])
    for case in (spec, twin):
        report = verify(case, checks=["finite_difference"], max_examples=0)
        assert report.passed, str(report)


def test_max_examples_zero_runs_the_explicit_examples_only() -> None:
    spec = Spec(name="square", forward=lambda x: x**2, inputs={"x": Input(["n"])},
                examples=[{"x": [1.0]}, {"x": [2.0, 3.0]}])
    assert verify(spec, checks=["taylor"], max_examples=0).examples == 2
    with pytest.raises(ValueError, match="max_examples=-1 must be an integer >= 0"):
        verify(spec, max_examples=-1)


def test_the_example_time_limit_keeps_an_outer_timer() -> None:
    """pytest-timeout's signal method arms ITIMER_REAL; the harness's own limit must
    neither cancel it nor swallow its deadline."""
    import signal
    import time

    from harness.checks.evaluate import time_limit

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append("outer"))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with time_limit(60.0):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 4.0 < left <= 5.0  # re-armed with what it had left
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with time_limit(60.0):
            time.sleep(0.2)  # the outer deadline comes first: its handler runs
        assert fired == ["outer"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _JvpRaisesTypeError(torch.autograd.Function):
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
        raise TypeError("a bug in the jvp")


@pytest.mark.parametrize("check", ["forward_mode", "batched"])
def test_a_jvp_that_raises_is_the_spec_failing_not_a_traceback(check: str) -> None:
    spec = Spec(name="jvp_bug", forward=lambda x: _JvpRaisesTypeError.apply(x),
                inputs={"x": Input(["n"])})
    headline = str(verify(spec, checks=[check], max_examples=3, seed=0)).splitlines()[0]
    assert headline.startswith("The spec's code failed"), headline
    assert "forward under forward-mode AD raised TypeError: a bug in the jvp" in headline


@pytest.mark.parametrize(("values", "finite"), [
    ([1.0, -2.0], True),
    ([1e308, 1e308], True),  # the sum overflows: the elementwise test decides
    ([1.0, float("inf")], False),
    ([float("inf"), -float("inf")], False),  # the sum is nan
    ([float("nan"), 0.0], False),
    ([], True),
])
def test_a_forward_output_is_finite_exactly_when_every_element_is(values, finite) -> None:
    output = torch.tensor(values, dtype=torch.float64)
    if finite:
        assert evaluate.checked_output(output, "forward", like=None) is output
    else:
        with pytest.raises(Fault, match="forward returned a non-finite value"):
            evaluate.checked_output(output, "forward", like=None)
