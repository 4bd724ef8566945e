"""Every planted bug is caught, by every check expected to catch it, in every seed and dtype.

The corpus is ``corpus_planted.PLANTED``. A case passes only when ``verify``
returns ``passed=False`` for the check, and the first line of the message names
the spec, the check (with device and dtype) and the input whose gradient is
wrong. A failure that is only "The spec's code failed" or "Most examples could
not be judged" does not count as catching a bug, except for the entries whose
bug IS a wrong shape (``fault=True``).

Seeds 0-2 run by default; ``pytest -m heavy`` runs seeds 3-9. Seed 0 runs
verify as a user gets it, shrinking included; the other seeds only need the bug
found, so they skip Hypothesis' shrink phase (most of the time of a failure).
"""

from __future__ import annotations

import pytest
import torch
from corpus_planted import PLANTED, Planted
from hypothesis import Phase, settings

from harness import verify

SEEDS = (0, 1, 2)
HEAVY_SEEDS = tuple(range(3, 10))
MAX_EXAMPLES = 15
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# Checks whose failure is about one input's gradient; the headline names that input.
PER_INPUT = ("analytic", "reference", "finite_difference", "taylor")


@pytest.fixture(autouse=True, scope="module")
def _quick_runs():
    """One torch thread (tiny tensors: waking a second one costs more than the work), no
    Hypothesis explain phase (verify never shows its output; it costs seconds a failure),
    and no example database, so that each seed finds its own examples."""
    threads = torch.get_num_threads()
    profile = settings.get_current_profile_name()
    settings.register_profile("planted", parent=settings.get_profile(profile), database=None,
                              phases=[p for p in Phase if p is not Phase.explain])
    settings.register_profile("planted-no-shrink", parent=settings.get_profile("planted"),
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("planted")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    settings.load_profile(profile)


def _cases():
    for entry in PLANTED:
        for dtype in DTYPES:
            for check in entry.checks(dtype):
                yield pytest.param(entry, check, dtype, id=f"{entry.name}-{check}-{dtype}")


def _seeds():
    yield from SEEDS
    for seed in HEAVY_SEEDS:  # deselected unless asked for: pytest -m heavy
        yield pytest.param(seed, marks=pytest.mark.heavy)


@pytest.mark.parametrize("seed", list(_seeds()))
@pytest.mark.parametrize(("entry", "check", "dtype"), list(_cases()))
def test_planted_bug_is_caught(entry: Planted, check: str, dtype: str, seed: int) -> None:
    settings.load_profile("planted" if seed == 0 else "planted-no-shrink")
    try:
        report = verify(entry.spec, checks=[check], dtype=DTYPES[dtype], seed=seed,
                        max_examples=MAX_EXAMPLES)
    finally:
        settings.load_profile("planted")
    assert not report.passed, (
        f"planted bug not caught by {check} in {dtype} (seed {seed}): {entry.bug}\n{report}")
    assert report.examples > 0
    headline = str(report).splitlines()[0]
    assert f"in spec {entry.name!r} [{check}, cpu, {dtype}]" in headline, headline
    assert {failure.check for failure in report.failures} == {check}
    if entry.fault:
        assert headline.startswith("The spec's code failed"), headline
        assert f"backward.{entry.input} returned shape" in headline, headline
        return
    assert "The spec's code failed" not in headline, str(report)
    assert "Most examples could not be judged" not in headline, str(report)
    if check in PER_INPUT:
        assert headline.startswith(f"Gradient of {entry.input!r} is wrong"), headline


GRADCHECK_NAMING = [entry for entry in PLANTED if "gradcheck" in entry.catches
                    and len(entry.spec.differentiable) > 1]


@pytest.mark.parametrize("entry", GRADCHECK_NAMING, ids=[e.name for e in GRADCHECK_NAMING])
def test_gradcheck_headline_names_the_input(entry: Planted) -> None:
    report = verify(entry.spec, checks=["gradcheck"], seed=0, max_examples=MAX_EXAMPLES)
    assert not report.passed
    assert repr(entry.input) in str(report).splitlines()[0], str(report)


def test_corpus_covers_the_brief() -> None:
    """At least 25 planted bugs, and every kind of catching check is exercised."""
    assert len(PLANTED) >= 25
    caught_by = set().union(*(entry.catches for entry in PLANTED))
    assert {"analytic", "reference", "finite_difference", "gradcheck", "gradgradcheck",
            "taylor", "forward_mode"} <= caught_by
    assert any(entry.fault for entry in PLANTED)
    assert any(entry.dtypes == ("float64",) for entry in PLANTED)
    assert any(entry.spec.jvp is not None for entry in PLANTED)
