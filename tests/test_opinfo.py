"""The harness on PyTorch's own OpInfo database: zero false positives, zero exceptions.

Every autograd OpInfo's first float64 samples (tests/opinfo_specs.py), each a plain
spec at its own point (max_examples=0): finite_difference, taylor, gradcheck and
forward_mode in float64 and finite_difference and taylor in float32 (complex128 and
complex64 for a complex sample) must pass, and ``verify`` must never raise. A known
torch gradient bug (opinfo_specs.KNOWN_TORCH_BUGS) is a strict expected failure with its
evidence; where OpInfo itself marks the op's gradient test an expected failure or skips
it, the item is a non-strict expected failure citing that.
``tests/measure_opinfo.py`` measures the same corpus.

The corpus items (``opinfo`` marker, about 6000 items, half an hour on two cores) are
off by default: they are generated and run only under ``-m opinfo`` (``tox -e
opinfo``) or with ``HARNESS_OPINFO=1``. The tests below them, on a handful of ops,
run in the default suite.
"""

from __future__ import annotations

import os
import re

import opinfo_specs
import pytest
import torch

from harness import verify

OFF = "OpInfo corpus items run under -m opinfo (tox -e opinfo) or HARNESS_OPINFO=1"
# Why a sample may be left out; any other reason is a converter regression.
EXPECTED_SKIPS = re.compile(
    r"no float64 on CPU|torch\.sparse_\w+ tensor|non-finite (sample values|output)|"
    r"no argument requires grad|forward raised NotImplementedError at conversion"
)


def selected(config: pytest.Config) -> bool:
    """Whether this run asks for the corpus items (building them imports op_db and
    converts a thousand samples: a minute)."""
    if os.environ.get("HARNESS_OPINFO"):
        return True
    expression = config.getoption("markexpr", "") or ""
    return bool(re.search(r"(?<!not )\bopinfo\b", expression))


_CORPUS: list[opinfo_specs.Corpus] = []


def corpus() -> opinfo_specs.Corpus:
    if not _CORPUS:
        _CORPUS.append(opinfo_specs.load())
    return _CORPUS[0]


class FalsePositive(AssertionError):
    """verify reported a right torch gradient wrong at OpInfo's point."""


class VerifyRaised(AssertionError):
    """verify raised instead of returning a report."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sample" not in metafunc.fixturenames:
        return
    if not selected(metafunc.config):
        metafunc.parametrize("sample,check,dtype", [
            pytest.param(None, None, None, id="not-generated",
                         marks=pytest.mark.skip(reason=OFF))])
        return
    params = []
    for sample in corpus().samples:
        for dtype, checks in opinfo_specs.CHECKS_PER_DTYPE.items():
            for check in checks:
                marks = []
                key = f"{check}/{dtype}"
                evidence = opinfo_specs.KNOWN_TORCH_BUGS.get(sample.id, {}).get(key)
                if evidence:
                    marks.append(pytest.mark.xfail(raises=FalsePositive, strict=True,
                                                   reason=evidence))
                elif key in sample.opinfo_expects:
                    # OpInfo's own word, not evidence checked here: an XPASS is no error.
                    marks.append(pytest.mark.xfail(raises=FalsePositive, strict=False,
                                                   reason=sample.opinfo_expects[key]))
                item_id = f"{sample.op}-{sample.index}-{check}-{sample.dtype(dtype)}"
                params.append(pytest.param(sample, check, dtype, id=item_id, marks=marks))
    metafunc.parametrize("sample,check,dtype", params)


@pytest.mark.opinfo
def test_opinfo_sample(sample: opinfo_specs.Sample, check: str, dtype: str) -> None:
    outcome = opinfo_specs.run(sample, check, dtype, seed=0)
    if outcome.status == "error":
        raise VerifyRaised(f"verify raised on {sample.id}: {outcome.reason}")
    if outcome.status == "fail":
        from harness.report import message

        raise FalsePositive("\n\n".join(message(failure) for failure in outcome.failures))
    assert outcome.status in ("pass", "skipped"), outcome


@pytest.mark.opinfo
def test_the_corpus_covers_op_db() -> None:
    """Every autograd op contributes unless a known category rules it out."""
    found = corpus()
    unexpected = {reason: ids for reason, ids in found.skipped.items()
                  if not EXPECTED_SKIPS.match(reason)}
    assert not unexpected, unexpected
    assert found.ops > 500 and len(found.samples) > 1000, found.summary()
    converted_ops = {sample.op for sample in found.samples}
    assert len(converted_ops) > 0.95 * found.ops, found.summary()


@pytest.mark.opinfo
def test_at_least_98_percent_of_the_samples_are_plain_specs() -> None:
    """Issue 15: 1015 of 1031 (98.4%) are; 16 need an adaptation a Spec cannot express —
    lists of tensors of different shapes (einsum, column_stack, linalg.multi_dot), running
    statistics updated in place (batch and instance norm)."""
    found = corpus()
    assert found.plain >= 0.98 * len(found.samples), found.summary()


# --- on a handful of ops: in the default suite ----------------------------------------------


@pytest.fixture(scope="module")
def few() -> dict[str, opinfo_specs.Sample]:
    found = opinfo_specs.load(ops=["addcmul", "gather", "max.reduction_with_dim", "stack",
                                   "polar", "nn.functional.hardsigmoid", "native_layer_norm"],
                              per_op=1)
    return {sample.op: sample for sample in found.samples}


def test_a_sample_is_a_plain_spec_at_its_opinfo_point(few) -> None:
    """The explicit example holds the sample's values, non-tensor arguments are params,
    and the forward is the op's."""
    assert few["gather"].spec.params == {"arg0": (few["gather"].example["arg0"],)}  # dim
    sample = few["addcmul"]
    assert not sample.adapted
    assert set(sample.spec.inputs) == {"input", "arg0", "arg1"}
    example = sample.spec.examples[0]
    for name in sample.spec.inputs:
        value = sample.example[name]
        assert torch.equal(example.values[name], value)
        spec_input = sample.spec.inputs[name]
        assert spec_input.low <= float(value.min()) and float(value.max()) <= spec_input.high
    expected = torch.addcmul(sample.example["input"], sample.example["arg0"],
                             sample.example["arg1"])
    assert torch.equal(sample.call(sample.example), expected)


def test_integer_inputs_tuple_outputs_lists_and_complex_need_no_wrapper(few) -> None:
    gather, peak, stack, polar = (few[name] for name in
                                  ("gather", "max.reduction_with_dim", "stack", "polar"))
    index = [n for n, i in gather.spec.inputs.items() if i.dtype == "int64"]
    assert index and not gather.spec.inputs[index[0]].requires_grad
    assert gather.spec.examples[0].values[index[0]].dtype == torch.int64
    _, indices = peak.call(peak.example)  # a tuple, kept: indices are not differentiated
    assert indices.dtype == torch.int64
    assert stack.spec.inputs["input"].count is not None  # a list input
    assert polar.call(polar.example).is_complex() and not polar.is_complex  # float64 item
    for sample in (gather, peak, stack, polar):
        assert not sample.adapted, sample.adapted
        for check in ("finite_difference", "gradcheck"):
            outcome = opinfo_specs.run(sample, check, "float64")
            assert outcome.status == "pass", (sample.id, check, outcome.headline)


def test_complex_samples_are_complex128_items() -> None:
    found = opinfo_specs.load(ops=["mul", "sgn", "linalg.det"], per_op=0, complex_per_op=1)
    assert {sample.op for sample in found.samples} == {"mul", "sgn", "linalg.det"}
    for sample in found.samples:
        assert sample.is_complex and not sample.adapted, sample.id
        assert sample.dtype("float64") == "complex128" and sample.dtype("float32") == "complex64"
        for check, dtype in (("finite_difference", "float64"), ("gradcheck", "float64"),
                             ("finite_difference", "float32")):
            outcome = opinfo_specs.run(sample, check, dtype)
            assert outcome.status == "pass", (sample.id, check, dtype, outcome.headline)


def test_outputs_torch_does_not_differentiate_are_declared_not_dropped(few) -> None:
    """native_layer_norm's mean and rstd are floating outputs autograd records no
    gradient for: the spec declares them (nondifferentiable_outputs), and stays plain."""
    sample = few["native_layer_norm"]
    assert not sample.adapted
    assert sample.spec.nondifferentiable_outputs == {1, 2}
    assert len(sample.call(sample.example)) == 3
    for check in ("finite_difference", "gradcheck", "forward_mode"):
        outcome = opinfo_specs.run(sample, check, "float64")
        assert outcome.status == "pass", (check, outcome.headline)


def test_verify_runs_after_the_plain_import_that_freezes_torchs_flags(few) -> None:
    assert torch.backends.flags_frozen()  # torch.testing._internal's import did it
    report = verify(few["addcmul"].spec, checks=["finite_difference"], max_examples=0)
    assert report.passed and report.examples == 1, str(report)


def test_the_hardsigmoid_torch_bug_is_seen_at_opinfos_point(few) -> None:
    sample = few["nn.functional.hardsigmoid"]
    assert "finite_difference/float64" in opinfo_specs.KNOWN_TORCH_BUGS[sample.id]
    outcome = opinfo_specs.run(sample, "finite_difference", "float64")
    assert outcome.status == "fail", outcome.headline
    assert opinfo_specs.run(sample, "gradcheck", "float64").status == "pass"  # blind to it


@pytest.mark.opinfo
def test_a_forward_that_is_another_function_in_float32_is_not_blamed_on_the_backward() -> None:
    """fractional_max_pool3d draws its pooling regions with torch.rand in the input's
    dtype (OpInfo seeds it per call): in float32 it pools other regions than in float64,
    0.82 apart at the same point. The float64 oracle cannot judge that gradient: the
    example is discarded with the reason, where it once read as a wrong backward."""
    sample = next(s for s in opinfo_specs.load(["nn.functional.fractional_max_pool3d"]).samples
                  if s.index == 1)
    for check in ("finite_difference", "taylor"):
        report = verify(sample.spec, checks=[check], dtype=torch.float32, max_examples=0)
        assert report.passed and report.discarded == report.examples == 1, str(report)
        assert any("float32 forward is another function than the float64 one" in reason
                   for reason in report.discard_reasons), report.discard_reasons
    assert opinfo_specs.run(sample, "finite_difference", "float64").status == "pass"


@pytest.mark.xfail(strict=True, reason=opinfo_specs.TRIGAMMA)
def test_digamma_float64_gradient_is_trigamma() -> None:
    """The second torch bug the corpus shows, without the harness: d/dx digamma is
    trigamma, which torch's float64 backward computes to 4.6e-10 relative (mpmath's
    to 30 digits is the truth)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    x = torch.tensor([0.5, 1.5, 2.0474, 4.1776], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.digamma(x).sum(), x)
    truth = torch.tensor([float(mpmath.psi(1, v)) for v in x.tolist()], dtype=torch.float64)
    relative = ((grad - truth) / truth).abs().max().item()
    assert relative < 1e-14, f"relative error {relative:.3g}"


@pytest.mark.xfail(strict=True, reason=opinfo_specs.HARDSIGMOID)
def test_hardsigmoid_float64_gradient_is_one_sixth() -> None:
    """The torch bug the corpus shows, without the harness: d/dx hardsigmoid = 1/6 on
    (-3, 3); torch's float64 backward (and forward AD) return float32(1/6)."""
    x = torch.tensor([-2.5, -1.0, 0.3, 2.9], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.nn.functional.hardsigmoid(x).sum(), x)
    assert torch.autograd.gradcheck(torch.nn.functional.hardsigmoid, (x,))  # blind to it
    relative = (grad * 6 - 1).abs().max().item()
    assert relative < 1e-15, f"relative error {relative:.3g} (float32(1/6) = " \
        f"{float(torch.tensor(1 / 6, dtype=torch.float32))!r})"
