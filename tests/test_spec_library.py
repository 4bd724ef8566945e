"""Every formula of the shipped spec library is load-bearing: break it and its spec fails.

Each ``backward`` entry and each ``jvp`` of every spec under ``specs/`` is broken in turn
(its value times 1.1, plus 0.01, so that a zero gradient breaks too) and the check
that reads it must fail — naming that spec and, for a backward, that input. A pytester
run then shows that breaking one formula in a file fails exactly that spec's items.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest

from harness import load_specs, verify
from harness.spec import Spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
LIBRARY = load_specs(SPECS)
EXAMPLES = 3


class _Broken:
    """A backward or jvp call whose value is off: 1.1 v + 0.01."""

    def __init__(self, call):
        self.call, self.fn, self.role, self.names = call, call.fn, call.role, call.names

    def __call__(self, values):
        value = self.call(values)
        if isinstance(value, (tuple, list)):  # a list input's gradients, one per tensor
            return [1.1 * entry + 0.01 for entry in value]
        return 1.1 * value + 0.01


def _with(spec: Spec, **changes) -> Spec:
    broken = copy.copy(spec)
    for name, value in changes.items():
        setattr(broken, name, value)
    return broken


def _backward_cases():
    for spec in LIBRARY:
        for name in spec.backward:
            yield pytest.param(spec, name, id=f"{spec.name}-{name}")


@pytest.mark.parametrize(("spec", "name"), list(_backward_cases()))
def test_breaking_a_backward_fails_its_spec(spec: Spec, name: str) -> None:
    broken = _with(spec, backward={**spec.backward, name: _Broken(spec.backward[name])})
    report = verify(broken, checks=["analytic"], max_examples=EXAMPLES, seed=0)
    assert not report.passed, f"breaking backward.{name} of {spec.name!r} went unnoticed"
    headline = report.failures[0].headline
    # A list input's failure names the tensor: 'xs[0]'.
    assert re.match(rf"Gradient of '{name}(\[\d+\])?' is wrong in spec '{spec.name}'",
                    headline), headline


@pytest.mark.parametrize("spec", [s for s in LIBRARY if s.jvp is not None], ids=lambda s: s.name)
def test_breaking_a_jvp_fails_its_spec(spec: Spec) -> None:
    broken = _with(spec, jvp=_Broken(spec.jvp))
    report = verify(broken, checks=["forward_mode"], max_examples=EXAMPLES, seed=0)
    assert not report.passed, f"breaking the jvp of {spec.name!r} went unnoticed"
    assert f"in spec {spec.name!r}" in report.failures[0].headline


def test_the_library_has_formulas_to_break() -> None:
    assert len(LIBRARY) >= 40
    assert sum(len(spec.backward) for spec in LIBRARY) >= 40
    assert sum(spec.jvp is not None for spec in LIBRARY) >= 3


def test_breaking_one_formula_fails_exactly_that_spec(pytester: pytest.Pytester) -> None:
    copied = pytester.path / "specs" / "seed.toml"
    copied.parent.mkdir()
    shutil.copy(SPECS / "seed.toml", copied)
    text = copied.read_text()
    right = 'backward.b = "grad * 2 * b"'
    assert right in text
    copied.write_text(text.replace(right, 'backward.b = "grad * b"'))
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-devices=cpu",
                                "--harness-checks=analytic", "--harness-max-examples=3",
                                "--harness-seed=0")
    failed = sorted(line.split(" - ")[0] for line in result.stdout.lines
                    if line.startswith("FAILED "))
    assert failed == ["FAILED specs/seed.toml::two_inputs::analytic[cpu-float32]",
                      "FAILED specs/seed.toml::two_inputs::analytic[cpu-float64]"]
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2 and outcomes["passed"] >= 8
