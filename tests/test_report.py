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
        "Greatest absolute difference: 3.19064 at index (1,) (up to 1.5e-14 allowed: "
        "autograd rounding 9.2e-15 + formula rounding 3.1e-15 + tolerance 2.8e-15)",
        "Greatest relative difference: 0.5 at index (0,) (up to 2.4e-15 allowed)",
        "   index   analytic    autograd    finite difference",
        "   (1,)    3.1906399   6.3812797   6.3812797",
        "   (0,)    2.1831638   4.3663276   4.3663276",
        "Failing example (examples[0] of the spec): n=2; x=[1.5, -2.0]",
        "Cotangent (grad): [1.4554425, -1.5953199]",  # analytic = grad * x = 2.1831638
        f"Spec: {spec.location}",
    ]


def test_message_for_a_shrunk_example_ends_with_how_to_reproduce_it() -> None:
    spec = _wrong_square()
    assert _lines(spec) == [
        "Gradient of 'x' is wrong in spec 'wrong_square' [analytic, cpu, float64]: "
        "the analytic formula is likely wrong",
        "",
        "Mismatched elements: 1 / 1 (100.0%)",
        "Greatest absolute difference: 1.45544 at index (0,) (up to 6.8e-15 allowed: "
        "autograd rounding 4.3e-15 + tolerance 1.3e-15 + formula rounding 1.2e-15)",
        "Greatest relative difference: 0.5 at index (0,) (up to 2.3e-15 allowed)",
        "   index   analytic    autograd    finite difference",
        "   (0,)    1.4554425   2.9108851   2.9108851",
        "Minimal failing example (after shrinking): n=1; x=[1.0]",
        "Cotangent (grad): [1.4554425]",
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
        "Mismatched elements: 31 / 100 (31.0%)",
        "Greatest absolute difference: 1 at index (4,) (up to 5e-14 allowed: formula "
        "rounding 2e-14 + autograd rounding 2e-14 + tolerance 9.6e-15)",
        "Greatest relative difference: 0.0592702 at index (80,) (up to 4.4e-15 allowed)",
    ]
    assert lines[5:11] == [
        "   index   analytic    autograd    finite difference",
        "   (4,)    22.551807   21.551807   21.551807",
        "   (83,)   20.189693   19.189693   19.189693",
        "   (5,)    31.859809   30.859809   30.859809",
        "   (57,)   21.084698   20.084698   20.084698",
        "   (80,)   17.871892   16.871892   16.871892",
    ]
    assert lines[11] == ("Minimal failing example (after shrinking): n=100; "
                         "x=<(100,) tensor, min=-9.945, max=9.944, mean=0.9658>")
    assert lines[12].startswith("Cotangent (grad): <(100,) tensor, min=")
    assert len(lines) == 15


def test_message_in_float32_names_the_dtype_and_allows_more() -> None:
    lines = _lines(_wrong_square(examples=[{"x": [1.5, -2.0]}]), dtype=torch.float32)
    assert lines[0].startswith("Gradient of 'x' is wrong in spec 'wrong_square' "
                               "[analytic, cpu, float32]")
    assert lines[3] == ("Greatest absolute difference: 3.19064 at index (1,) (up to 2.4e-05 "
                        "allowed: autograd rounding 1.5e-05 + formula rounding 7.6e-06 + "
                        "tolerance 1.5e-06)")


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
