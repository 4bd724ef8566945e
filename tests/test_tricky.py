"""Right-but-tricky specs never fail: every applicable check, float64 and float32.

The corpus is ``corpus_tricky.TRICKY``. Each case must pass and must have
judged examples (not all discarded, not skipped — except forward mode for a
custom Function without a jvp). On a failure the whole report is printed. A
false positive found is fixed in the harness and its example joins the corpus:
there is no list of known ones.

Seeds 0-1 run by default; ``pytest -m heavy`` runs seeds 2-14. On the CPU unless
``--corpus-device=cuda`` (tests/conftest.py); the checks that apply are the same on
either device (``devices``, the one CUDA-only check, is left out).
"""

from __future__ import annotations

import pytest
import torch
from corpus_signatures import SIGNATURE_TWINS
from corpus_tricky import TRICKY, Tricky
from quick import QUICK

from harness import CHECKS, verify
from harness.registry import CHECK_INFO, chosen_checks

SEEDS = (0, 1)  # Hypothesis draws its first examples alike in every seed: two suffice here
HEAVY_SEEDS = tuple(range(2, 15))
MAX_EXAMPLES = 10
DTYPES = {"float64": torch.float64, "float32": torch.float32,
          "complex128": torch.complex128, "complex64": torch.complex64}

pytestmark = pytest.mark.usefixtures("one_thread")


def _applicable(entry: Tricky, dtype: str) -> list[str]:
    return [name for name in chosen_checks(entry.spec)  # a spec may leave a check out
            if name != "devices" and CHECKS[name].skip_reason(entry.spec, "cpu", dtype) is None]


def _cases():
    for entry in TRICKY + SIGNATURE_TWINS:
        for dtype in entry.dtypes:
            for check in _applicable(entry, dtype):
                yield pytest.param(entry, check, dtype, id=f"{entry.name}-{check}-{dtype}")


def _seeds():
    yield from SEEDS
    for seed in HEAVY_SEEDS:  # deselected unless asked for: pytest -m heavy
        yield pytest.param(seed, marks=pytest.mark.heavy)


@pytest.mark.parametrize("seed", list(_seeds()))
@pytest.mark.parametrize(("entry", "check", "dtype"), list(_cases()))
def test_tricky_spec_passes(entry: Tricky, check: str, dtype: str, seed: int,
                            corpus_device: str) -> None:
    few = CHECK_INFO[check].max_examples is not None  # the contract checks: their own few
    report = verify(entry.spec, checks=[check], device=corpus_device, dtype=DTYPES[dtype],
                    seed=seed, max_examples=None if few else MAX_EXAMPLES, settings=QUICK)
    assert report.passed, f"false positive on a right spec ({entry.why}), seed {seed}:\n{report}"
    assert report.examples > report.discarded, str(report)
    if check == "undefined" and check in report.skipped:  # a forward with one output
        assert "one differentiable output" in report.skipped[check], str(report)
        return
    skipped = check in report.skipped
    assert skipped == (check == "forward_mode" and entry.no_forward_ad), str(report)


def test_corpus_covers_the_brief() -> None:
    assert len(TRICKY) >= 25
    assert any(entry.spec.inputs[name].kinks for entry in TRICKY for name in entry.spec.inputs)
    assert any(entry.spec.inputs[name].unique for entry in TRICKY for name in entry.spec.inputs)
    assert any(entry.spec.twice_differentiable for entry in TRICKY)
