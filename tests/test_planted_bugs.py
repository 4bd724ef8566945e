"""Every planted bug is caught, by every check expected to catch it, in every seed and dtype.

The corpus is ``corpus_planted.PLANTED``. A case passes only when ``verify``
returns ``passed=False`` for the check, and the first line of the message names
the spec, the check (with device and dtype) and the input whose gradient is
wrong. A failure that is only "The spec's code failed" or "Most examples could
not be judged" does not count as catching a bug, except for the entries whose
bug IS a wrong shape (``fault=True``).

Seeds 0-2 run by default; ``pytest -m heavy`` runs seeds 3-9. On the CPU unless
``--corpus-device=cuda`` (tests/conftest.py). Only finding the
bug counts, so Hypothesis' shrink phase (most of the time of a failure) is
skipped, except at seed 0 for the few entries in ``SHRUNK``, which run verify as a
user gets it.
"""

from __future__ import annotations

import re

import pytest
import torch
from corpus_planted import PLANTED, Planted
from corpus_signatures import SIGNATURE_PLANTED
from quick import NO_SHRINK, QUICK

from harness import verify

SEEDS = (0, 1, 2)
HEAVY_SEEDS = tuple(range(3, 10))
MAX_EXAMPLES = 15
DTYPES = {"float64": torch.float64, "float32": torch.float32,
          "complex128": torch.complex128, "complex64": torch.complex64}
CORPUS = PLANTED + SIGNATURE_PLANTED
# Checks whose failure is about one input's gradient; the headline names that input.
PER_INPUT = ("analytic", "reference", "finite_difference", "taylor")


pytestmark = pytest.mark.usefixtures("one_thread")
# Shrinking is exercised on these (formulas wrong everywhere and on negative inputs only,
# a Function's backward, a second derivative, a tangent, a wrong shape); the
# failure-message tests pin the shrunk text itself. Every other case only needs the bug
# found.
SHRUNK = ("square_factor_error", "negative_inputs", "fn_cube_sign_error",
          "fn_double_backward_sign", "fn_jvp_factor_error", "broadcast_not_reduced")


def _cases():
    for entry in CORPUS:
        for dtype in DTYPES:
            for check in entry.checks(dtype):
                yield pytest.param(entry, check, dtype, id=f"{entry.name}-{check}-{dtype}")


def _seeds():
    yield from SEEDS
    for seed in HEAVY_SEEDS:  # deselected unless asked for: pytest -m heavy
        yield pytest.param(seed, marks=pytest.mark.heavy)


@pytest.mark.parametrize("seed", list(_seeds()))
@pytest.mark.parametrize(("entry", "check", "dtype"), list(_cases()))
def test_planted_bug_is_caught(entry: Planted, check: str, dtype: str, seed: int,
                               corpus_device: str) -> None:
    shrink = seed == 0 and entry.name in SHRUNK
    report = verify(entry.spec, checks=[check], device=corpus_device, dtype=DTYPES[dtype],
                    seed=seed, max_examples=MAX_EXAMPLES,
                    settings=QUICK if shrink else NO_SHRINK)
    assert not report.passed, (
        f"planted bug not caught by {check} in {dtype} (seed {seed}): {entry.bug}\n{report}")
    assert report.examples > 0
    headline = str(report).splitlines()[0]
    assert f"in spec {entry.name!r} [{check}, {corpus_device}, {dtype}]" in headline, headline
    assert {failure.check for failure in report.failures} == {check}
    if entry.fault:
        assert headline.startswith("The spec's code failed"), headline
        assert f"backward.{entry.input} returned shape" in headline, headline
        return
    assert "The spec's code failed" not in headline, str(report)
    assert "Most examples could not be judged" not in headline, str(report)
    if check in PER_INPUT:
        # A multi-output forward's failure may name the output too: "'x' through output 1".
        assert re.match(rf"Gradient of '{entry.input}'( through output \d)? is wrong",
                        headline), headline


GRADCHECK_NAMING = [entry for entry in CORPUS if "gradcheck" in entry.catches
                    and len(entry.spec.differentiable) > 1]


@pytest.mark.parametrize("entry", GRADCHECK_NAMING, ids=[e.name for e in GRADCHECK_NAMING])
def test_gradcheck_headline_names_the_input(entry: Planted, corpus_device: str) -> None:
    report = verify(entry.spec, checks=["gradcheck"], device=corpus_device, seed=0,
                    max_examples=MAX_EXAMPLES, settings=NO_SHRINK)
    assert not report.passed
    assert repr(entry.input) in str(report).splitlines()[0], str(report)


def test_the_shrunk_cases_are_planted_bugs() -> None:
    assert set(SHRUNK) <= {entry.name for entry in PLANTED}


def test_corpus_covers_the_brief() -> None:
    """At least 25 planted bugs, and every kind of catching check is exercised."""
    assert len(PLANTED) >= 25
    caught_by = set().union(*(entry.catches for entry in PLANTED))
    assert {"analytic", "reference", "finite_difference", "gradcheck", "gradgradcheck",
            "taylor", "forward_mode"} <= caught_by
    assert any(entry.fault for entry in PLANTED)
    assert any(entry.dtypes == ("float64",) for entry in PLANTED)
    assert any(entry.spec.jvp is not None for entry in PLANTED)
