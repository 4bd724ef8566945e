"""The Reproduce line reruns the same example: every option that changes the draw travels."""

from __future__ import annotations

import re
import shlex

import pytest

# Right for |x| < 5 and wrong above: explicit examples pass, only drawn ones fail.
WRONG_ABOVE_5 = """
[wrong_above_5]
forward = "x ** 2"
backward.x = "grad * 2 * x + (x > 5)"
inputs.x = { shape = ["n"] }
[[wrong_above_5.examples]]
x = [1.0, -2.0]
"""


def _reproduce(result: pytest.RunResult) -> list[str]:
    lines = [line for line in result.stdout.lines if line.startswith("Reproduce: ")]
    assert lines, result.stdout.str()
    return shlex.split(lines[0].removeprefix("Reproduce: "))


def _example(result: pytest.RunResult) -> str:
    found = re.search(r"^Minimal failing example \(after shrinking\): (.*)$",
                      result.stdout.str(), re.MULTILINE)
    assert found, result.stdout.str()
    return found.group(1)


def test_the_reproduce_line_carries_max_examples_and_ini_overrides(pytester, write) -> None:
    write(pytester.path / "elsewhere" / "wrong.toml", WRONG_ABOVE_5)
    write(pytester.path / "elsewhere" / "right.toml", "[square]\nforward = 'x ** 2'\n"
          "backward.x = 'grad * 2 * x'\ninputs.x = { shape = ['n'] }\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "harness_specs=elsewhere", "--harness-devices=cpu",
        "--harness-dtypes=float64", "--harness-checks=analytic", "--harness-seed=3",
        "--harness-max-examples=40")
    result.assert_outcomes(failed=1, passed=1)
    command = _reproduce(result)
    assert command[:2] == ["pytest", "elsewhere/wrong.toml::wrong_above_5::analytic[cpu-float64]"]
    assert "--harness-max-examples=40" in command and "--harness-seed=3" in command
    assert command[command.index("-o") + 1] == "harness_specs=elsewhere"
    alone = pytester.runpytest("-p", "no:cacheprovider", *command[1:])
    alone.assert_outcomes(failed=1)
    assert _example(alone) == _example(result)


def test_max_examples_zero_runs_only_the_explicit_examples(pytester, write) -> None:
    write(pytester.path / "specs" / "wrong.toml", WRONG_ABOVE_5)
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-devices=cpu",
                                "--harness-dtypes=float64", "--harness-checks=analytic",
                                "--harness-max-examples=0")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-max-examples=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--harness-max-examples=-1 (or harness_max_examples) must be at least 0*"])
