"""The failure message, pinned line by line (as jaxtyping pins its errors).

The figures are deterministic: float64, a fixed example or a fixed seed, and a
cotangent drawn from a seeded generator. A change to any line of the message
must show up here.
"""

from __future__ import annotations

import torch

from harness import Input, Spec, verify
from harness.report import Failure, message


def _wrong_square(**options) -> Spec:
    return Spec(name="wrong_square", forward=lambda x: x**2, inputs={"x": Input(["n"])},
                backward={"x": lambda grad, x: grad * x}, **options)


def _lines(spec: Spec, **options) -> list[str]:
    report = verify(spec, checks=["analytic"], seed=0, **options)
    assert not report.passed
    return str(report).splitlines()


def test_message_for_an_explicit_example() -> None:
    spec = _wrong_square(examples=[{"x": [1.5, -2.0]}])
    lines = _lines(spec)
    assert lines == [
        "Gradient of 'x' is wrong in spec 'wrong_square' [analytic, cpu, float64]: "
        "the analytic formula is likely wrong",
        "",
        "Mismatched elements: 2 / 2 (100.0%)",
        "Greatest absolute difference: 3.56173 at index (1,) (up to 1.8e-14 allowed: "
        "autograd rounding 1.4e-14 + tolerance 3.2e-15 + formula rounding 1.7e-15)",
        "Greatest relative difference: 0.5 at index (0,) (up to 2.6e-15 allowed)",
        "   index   analytic     autograd     finite difference",
        "   (1,)    -3.5617298   -7.1234596   -7.1234596",
        "   (0,)    2.9663096    5.9326193    5.9326193",
        "Failing example (examples[0] of the spec): n=2; x=[1.5, -2.0]",
        "Cotangent (grad): [1.9775398, 1.7808649]",  # analytic = grad * x = 2.9663096
        f"Spec: {spec.location}",
    ]


def test_message_for_a_shrunk_example_ends_with_how_to_reproduce_it() -> None:
    spec = _wrong_square()
    assert _lines(spec) == [
        "Gradient of 'x' is wrong in spec 'wrong_square' [analytic, cpu, float64]: "
        "the analytic formula is likely wrong",
        "",
        "Mismatched elements: 1 / 1 (100.0%)",
        "Greatest absolute difference: 1.97754 at index (0,) (up to 8.7e-15 allowed: "
        "autograd rounding 5.2e-15 + formula rounding 1.8e-15 + tolerance 1.8e-15)",
        "Greatest relative difference: 0.5 at index (0,) (up to 2.2e-15 allowed)",
        "   index   analytic    autograd    finite difference",
        "   (0,)    1.9775398   3.9550795   3.9550795",
        "Minimal failing example (after shrinking): n=1; x=[1.0]",
        "Cotangent (grad): [1.9775398]",
        f"Spec: {spec.location}",
        "Reproduce: verify(spec, checks=['analytic'], device='cpu', dtype=torch.float64, "
        "seed=0)",
    ]


def test_message_for_a_large_input_summarises_it_and_lists_the_worst_five() -> None:
    spec = Spec(name="branch_above_5", forward=lambda x: x**2, inputs={"x": Input(["n"])},
                dims={"n": (100, 100)},
                backward={"x": lambda grad, x: grad * 2 * x + (x > 5).to(x.dtype)})
    lines = _lines(spec)
    assert lines[0] == ("Gradient of 'x' is wrong in spec 'branch_above_5' [analytic, cpu, "
                        "float64]: the analytic formula is likely wrong")
    assert lines[2:5] == [
        "Mismatched elements: 20 / 100 (20.0%)",
        "Greatest absolute difference: 1 at index (0,) (up to 1.8e-13 allowed: formula "
        "rounding 8e-14 + autograd rounding 7.9e-14 + tolerance 1.7e-14)",
        "Greatest relative difference: 0.0521653 at index (50,) (up to 2.2e-15 allowed)",
    ]
    assert lines[5:11] == [
        "   index   analytic    autograd    finite difference",
        "   (19,)   21.951398   20.951398   20.951398",
        "   (50,)   20.169841   19.169841   19.169841",
        "   (5,)    22.467626   21.467626   21.467626",
        "   (35,)   33.367211   32.367211   32.367211",
        "   (71,)   23.00548    22.00548    22.00548",
    ]
    assert lines[11] == ("Minimal failing example (after shrinking): n=100; "
                         "x=<(100,) tensor, min=-9.911, max=9.974, mean=-0.3644>")
    assert lines[12].startswith("Cotangent (grad): <(100,) tensor, min=")
    assert len(lines) == 15


def test_message_in_float32_names_the_dtype_and_allows_more() -> None:
    lines = _lines(_wrong_square(examples=[{"x": [1.5, -2.0]}]), dtype=torch.float32)
    assert lines[0].startswith("Gradient of 'x' is wrong in spec 'wrong_square' "
                               "[analytic, cpu, float32]")
    assert lines[3] == ("Greatest absolute difference: 3.56173 at index (1,) (up to 2.1e-05 "
                        "allowed: formula rounding 9.5e-06 + autograd rounding 9.5e-06 + "
                        "tolerance 1.7e-06)")


def test_message_of_a_bare_failure_has_no_empty_sections() -> None:
    failure = Failure("s", "taylor", "cuda", "float32", "Gradient of 'W' is wrong")
    assert message(failure) == "Gradient of 'W' is wrong in spec 's' [taylor, cuda, float32]"


def test_a_passing_report_says_why_examples_were_discarded() -> None:
    spec = Spec(name="relu", forward=lambda x: torch.relu(x), inputs={"x": Input([1])},
                examples=[{"x": [0.0]}])
    report = verify(spec, checks=["finite_difference"], max_examples=0)
    assert report.passed and report.discarded == 1
    assert report.discard_reasons == {
        "one-sided differences disagree: not differentiable here": 1}, report.discard_reasons
    assert str(report) == ("passed: 1 examples, 1 discarded (no verdict possible there); why:"
                           "\n   1 x one-sided differences disagree: not differentiable here")
