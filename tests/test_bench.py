"""harness.bench (sizes, timing, skips) and the plugin's benchmark items, at small sizes."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.bench import measure as bench
from harness.bench.measure import (
    Measurement,
    benchmark_dims,
    device_skip_reason,
    measure,
    prepare,
)
from harness.bench.plot import scale_dim, scaled_dims
from harness.bench.timing import time_calls
from harness.errors import BenchmarkSkipped
from harness.spec import Input, Spec

pytest_plugins = ["pytester"]


def _linear(**options) -> Spec:
    return Spec(
        forward=lambda X, W: (X @ W).square().mean(),
        inputs={"X": Input(("N", "D"), requires_grad=False), "W": Input(("D", 1))},
        dims={"N": (1, 8), "D": (1, 4)},
        name="linear",
        **options,
    )


def _vector(forward=lambda x: x.sin().sum(), **options) -> Spec:
    return Spec(forward=forward, inputs={"x": Input(("n",))}, name="vector", **options)


# --- sizes -------------------------------------------------------------------------------


def test_undeclared_dims_get_four_times_their_declared_maximum():
    assert benchmark_dims(_linear()) == {"N": 32, "D": 16}
    assert benchmark_dims(_vector()) == {"n": 24}  # the default range (1, 6)


def test_benchmark_sizes_are_kept_and_the_rest_defaulted():
    assert benchmark_dims(_linear(benchmark={"N": 4096})) == {"N": 4096, "D": 16}


def test_defaults_shrink_to_the_element_budget_but_not_below_the_declared_maximum():
    square = Spec(forward=lambda a: a.sum(), inputs={"a": Input(("n", "m"))},
                  dims={"n": (1, 500), "m": (1, 500)})
    dims = benchmark_dims(square)
    assert dims["n"] * dims["m"] <= bench.ELEMENT_BUDGET
    assert dims["n"] >= 500 and dims["m"] >= 500
    assert benchmark_dims(square, budget=100) == {"n": 500, "m": 500}


def test_explicit_benchmark_sizes_are_never_shrunk():
    big = _vector(dims={"n": (1, 8)}, benchmark={"n": 2 * bench.ELEMENT_BUDGET})
    assert benchmark_dims(big) == {"n": 2 * bench.ELEMENT_BUDGET}


def test_scalar_specs_have_no_dims():
    scalar = Spec(forward=lambda x: x**2, inputs={"x": Input()})
    assert benchmark_dims(scalar) == {}
    assert scale_dim(scalar) is None


def test_scaled_dims_fit_the_largest_input_to_the_target():
    linear = _linear(benchmark={"D": 64})
    assert scale_dim(linear) == "D"  # used by both inputs, N by X only
    assert scaled_dims(linear, "N", 2**10) == {"N": 16, "D": 64}
    assert scaled_dims(linear, "N", 1000) == {"N": 15, "D": 64}
    assert scaled_dims(linear, "N", 32) is None  # one row is already 64 elements
    with pytest.raises(ValueError, match="'M' is not a dim of spec 'linear'"):
        scaled_dims(linear, "M", 2**10)


# --- timing --------------------------------------------------------------------------------


def test_measure_gives_both_medians_and_their_ratio():
    m = measure(_linear(), {"N": 16, "D": 4}, min_time=0.0)
    assert m.spec == "linear" and m.device == "cpu" and m.dtype == "float32"
    assert m.dims == {"N": 16, "D": 4} and m.input_elements == 16 * 4 + 4
    assert 0 < m.forward_min_s <= m.forward_s and 0 < m.backward_min_s <= m.backward_s
    assert m.ratio == pytest.approx(m.backward_s / m.forward_s)
    assert m.ratio_min == pytest.approx(m.backward_min_s / m.forward_min_s)


def test_ratio_of_a_zero_forward_is_infinite():
    assert Measurement("s", "cpu", "float32", {}, 1, forward_s=0.0, backward_s=1.0).ratio \
        == float("inf")


def test_extra_info_carries_the_figures_and_is_json():
    m = Measurement("s", "cpu", "float32", {"n": 8}, 8, forward_s=2e-5, backward_s=5e-5)
    info = m.extra_info()
    assert {"forward_s", "backward_s", "ratio", "input_elements", "dims", "ratio_min"} <= set(info)
    assert info["ratio"] == pytest.approx(2.5)
    assert json.loads(json.dumps(info)) == info


def test_prepare_times_the_backward_alone_through_a_retained_graph():
    run = prepare(_vector(), {"n": 100}, warmup=0)
    assert run.dtype == torch.float32  # the spec is checked in float32 too
    (first,) = run.backward()
    (second,) = run.backward()  # retain_graph: the graph survives repeated backwards
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, run.grad_outputs[0] * run.values["x"].detach().cos())


def test_prepare_uses_the_specs_dtype_when_float32_is_not_checked():
    assert prepare(_vector(dtypes=["float64"]), {"n": 4}, warmup=0).dtype == torch.float64


def test_inputs_are_fixed_by_the_seed():
    one, two = (prepare(_vector(), {"n": 50}, warmup=0) for _ in range(2))
    torch.testing.assert_close(one.values["x"], two.values["x"])
    torch.testing.assert_close(one.grad_outputs, two.grad_outputs)


def test_time_calls_times_every_call_of_at_least_min_rounds():
    calls = []

    def slow_first():
        calls.append(None)
        time.sleep(0.02 if len(calls) == 1 else 0.0)

    (times,) = time_calls([slow_first], min_rounds=5, min_time=0.0)
    assert len(times) == len(calls) == 5
    assert times[0] >= 0.02 and statistics.median(times) < 0.01


def test_over_bound_lists_the_worst_first():
    ms = [Measurement(n, "cpu", "float32", {}, 1, forward_s=1.0, backward_s=r)
          for n, r in (("a", 2.0), ("b", 9.0), ("c", 6.0))]
    assert [m.spec for m in bench.over_bound(ms, 5.0)] == ["b", "c"]


def test_a_median_ratio_inflated_by_load_alone_is_not_over_the_bound():
    def timed(backward_min_s):
        return Measurement("g", "cpu", "float32", {}, 1, forward_s=1e-5, backward_s=1e-3,
                           forward_min_s=1e-5, backward_min_s=backward_min_s)

    assert bench.over_bound([timed(2e-5)], 5.0) == []  # the minima say 2x
    assert bench.over_bound([timed(9e-5)], 5.0) == [timed(9e-5)]


# --- skips ---------------------------------------------------------------------------------


def test_cuda_is_skipped_with_a_reason_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = device_skip_reason("cuda")
    assert reason is not None and reason.startswith("CUDA not available")
    with pytest.raises(BenchmarkSkipped, match="CUDA not available") as skipped:
        prepare(_vector(), {"n": 4}, device="cuda")
    assert skipped.value.reason == reason


def test_an_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="device='tpu' is not one of cpu, cuda"):
        device_skip_reason("tpu")


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 8000000000000 bytes"),
    MemoryError(),
])
def test_out_of_memory_is_a_skip_with_its_reason(error):
    def forward(x):
        raise error

    with pytest.raises(BenchmarkSkipped, match="out of memory building the graph at n=4 on cpu"):
        prepare(_vector(forward), {"n": 4})


def test_other_errors_are_not_skips():
    def forward(x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(Exception, match="shapes cannot be multiplied"):
        prepare(_vector(forward), {"n": 4})


def test_an_output_without_a_graph_is_a_skip():
    constant = _vector(lambda x: torch.ones((), dtype=x.dtype))
    with pytest.raises(BenchmarkSkipped, match="does not depend on x"):
        prepare(constant, {"n": 4})


# --- the benchmark items the plugin yields, in any project -------------------------------

SLOW_BACKWARD = '''
import time
import torch
from harness import Input, Spec


class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        time.sleep(0.02)  # far above the bound of 20 forwards, however loaded the machine
        return grad * 2


slow = Spec(forward=lambda x: SlowBackward.apply(x), inputs={"x": Input(("n",))},
            dims={"n": (1, 4)})
'''

BROKEN = '''
[cube]
forward = "x ** 3"
inputs.x = { shape = ["n"] }
benchmark = { n = 64 }

[broken]
forwrad = "x"
inputs.x = { shape = [] }
'''

UNRELATED_TEST = '''
def test_unrelated():
    assert True
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project: spec files and a test of its own, no benchmarks/ folder."""
    for variable in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(variable, raising=False)  # under -n: pytest-benchmark would not time
    pytester.makeini("[pytest]\n")
    specs = pytester.mkdir("specs")
    (specs / "small.toml").write_text(BROKEN)
    (specs / "slow.py").write_text(SLOW_BACKWARD)
    pytester.makepyfile(test_unrelated=UNRELATED_TEST)
    return pytester


TIMED = ("--harness-devices=cpu", "--benchmark-max-time=0.02", "--benchmark-min-rounds=3")


def test_plain_pytest_neither_collects_nor_times_benchmarks(project):
    result = project.runpytest("--co", "-q", "--harness-devices=cpu", "--harness-checks=analytic")
    assert not [line for line in result.stdout.lines if "::benchmark[" in line]
    result = project.runpytest("--harness-devices=cpu", "--harness-checks=analytic",
                               "--harness-max-examples=2")
    result.assert_outcomes(passed=1, failed=1)  # the unrelated test; broken fails
    result.stdout.no_fnmatch_line("*Name (time in*")
    result.stdout.no_fnmatch_line("*cheap-gradient bound*")


def test_benchmark_only_yields_one_item_per_spec_and_device(project):
    ids = [line for line in project.runpytest(
        "--co", "-q", "--benchmark-only", "--harness-devices=cpu,cuda").stdout.lines
        if "::" in line]
    assert ids == [
        "specs/slow.py::slow::benchmark[cpu]",
        "specs/slow.py::slow::benchmark[cuda]",
        "specs/small.toml::cube::benchmark[cpu]",
        "specs/small.toml::cube::benchmark[cuda]",
        "specs/small.toml::broken",  # fails as it does without benchmarks
        "test_unrelated.py::test_unrelated",  # pytest-benchmark skips it
    ]


def test_benchmark_only_times_them_and_warns_above_the_ratio_bound(project):
    result = project.runpytest("--benchmark-only", *TIMED, "--harness-ratio-bound=20", "-rfs")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*benchmark 'specs/slow.py::slow': 1 tests*",
        "*benchmark?cpu?*",
        "*benchmark 'specs/small.toml::cube': 1 tests*",
        "*cheap-gradient bound 20: 1 of 2 backward/forward ratios above it (warning)*",
        "WARNING slow ?cpu, float32?: backward/forward = *, of minima * > 20 (median "
        "backward *ms, forward *µs; n=16; 16 input elements)",
    ])
    result.stdout.no_fnmatch_line("*WARNING*cube*")  # a small ratio is not listed
    result.stdout.fnmatch_lines([
        "FAILED specs/small.toml::broken - specs/small.toml:8: spec 'broken': unknown*",
        "*Skipping non-benchmark (--benchmark-only active)*",
    ])
    result.stdout.no_fnmatch_line("*Benchmark fixture was not used*")


def test_benchmark_extra_info_is_saved(project):
    result = project.runpytest("--benchmark-only", *TIMED, "-k", "cube",
                               "--benchmark-json=out.json")
    result.assert_outcomes(passed=1, deselected=3)
    (saved,) = json.loads((project.path / "out.json").read_text())["benchmarks"]
    assert saved["group"] == "specs/small.toml::cube"
    assert saved["fullname"] == "specs/small.toml::cube::benchmark[cpu]"
    info = saved["extra_info"]
    assert info["dims"] == {"n": 64} and info["input_elements"] == 64
    assert info["spec"] == "cube" and info["location"] == "specs/small.toml:2"
    assert info["ratio"] == pytest.approx(info["backward_s"] / info["forward_s"])
    assert info["backward_s"] == pytest.approx(saved["stats"]["median"])


def test_benchmark_enable_runs_the_checks_and_times_the_benchmarks(project):
    result = project.runpytest("--benchmark-enable", *TIMED, "-k", "cube",
                               "--harness-checks=finite_difference", "--harness-dtypes=float64",
                               "--harness-max-examples=2", "-v")
    result.stdout.fnmatch_lines([
        "specs/small.toml::cube::finite_difference[[]cpu-float64[]] PASSED*",
        "specs/small.toml::cube::benchmark[[]cpu[]] PASSED*",
    ])
    result.assert_outcomes(passed=2, deselected=4)  # slow: check + benchmark; broken; unrelated
    result.stdout.fnmatch_lines(["*benchmark 'specs/small.toml::cube': 1 tests*"])


def test_a_missing_device_skips_its_benchmark(project, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = project.runpytest("--benchmark-only", "--harness-devices=cuda", "-k", "cube",
                               "-rs")
    result.assert_outcomes(skipped=1, deselected=3)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] specs/small.toml:2: CUDA not available*"])


def test_a_bad_ratio_bound_is_a_usage_error(project):
    result = project.runpytest("--benchmark-only", "--harness-ratio-bound=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--harness-ratio-bound=0.0 must be a positive number*"])


def test_the_ratio_bound_option_is_documented(project):
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(["*--harness-ratio-bound=RATIO*"])
    assert "Default: 5" in " ".join(result.stdout.str().split())


# --- bench-plot ----------------------------------------------------------------------------

SWEPT = '''
[cube]
forward = "x ** 3"
inputs.x = { shape = ["n", 2] }

[scalar]
forward = "x ** 2"
inputs.x = { shape = [] }
'''


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "swept.toml"
    path.write_text(SWEPT)
    return path


def test_bench_plot_sweeps_sizes_and_writes_a_png(spec_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from harness.bench.plot import main

    out = tmp_path / "figures" / "scaling.png"
    argv = ["cube", "--path", str(spec_file), "--out", str(out), "--devices", "cpu",
            "--min-exp", "4", "--max-exp", "6", "--min-time", "0"]
    assert main(argv) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    for n, elements in ((8, 16), (16, 32), (32, 64)):  # the input is (n, 2)
        assert f"cube cpu n={n}: {elements:>8} elements" in printed


@pytest.mark.parametrize(("wanted", "message"), [
    ("cub", "no spec 'cub' in "),
    ("scalar", "spec 'scalar' has no dim to scale"),
    ("cube:m", "'cube:m': 'm' is not a dim of spec 'cube' — its dims are n"),
])
def test_bench_plot_refuses_what_it_cannot_sweep(spec_file, tmp_path, capsys, wanted, message):
    pytest.importorskip("matplotlib")
    from harness.bench.plot import main

    assert main([wanted, "--path", str(spec_file), "--out", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_bench_plot_without_matplotlib_says_how_to_install_it(spec_file, monkeypatch, capsys):
    from harness.bench.plot import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["cube", "--path", str(spec_file)]) == 2
    assert "pip install 'pytest-gradharness[plot]'" in capsys.readouterr().err
