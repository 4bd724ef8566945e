"""tools/gpu-check.sh, as far as a machine without a GPU can run it.

Without CUDA every part says it is skipped and the script exits 0 (CUDA_VISIBLE_DEVICES
is emptied, so that this holds on a GPU machine too); ``--dry-run`` shows each part's
command and budget; ``--device cpu`` rehearses a part through the same pytest command
line, tally and summary as on the GPU. The helpers in tools/gpu_check.py (the tally
plugin, the summary line, the ratio table) are tested directly.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu-check.sh"
PARTS = ("specs", "corpora", "devices", "benchmarks")
SUMMARY = re.compile(r"gpu-check: (\w+): (\d+) passed, (\d+) failed, (\d+) skipped in (\d+) s "
                     r"\(budget (\d+) s\)(.*)")
TIME = r"[\d.]+ (?:µs|ms|s)"
ROW = re.compile(rf"gpu-check: benchmarks: (\w+) +(cpu|cuda) +float\d+ +{TIME} +{TIME} +"
                 r"([\d.]+) +\S.*")

sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402  (tools/ is no package: the script runs it by path)


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def test_the_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)


def test_without_cuda_every_part_is_skipped_and_it_exits_0() -> None:
    result = _run()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("gpu-check: no CUDA here: CUDA not available (torch ")
    skipped = [line for line in lines if re.fullmatch(r"gpu-check: \w+: skipped \(.+\)", line)]
    assert [line.split(":")[1].strip() for line in skipped] == list(PARTS)
    assert all("CUDA not available" in line for line in skipped)
    assert len(lines) == 1 + len(PARTS)  # nothing ran
    assert not result.stderr


def test_the_parts_named_are_the_parts_skipped() -> None:
    result = _run("--parts", "corpora,benchmarks")
    assert result.returncode == 0
    assert [line.split(":")[1].strip() for line in result.stdout.splitlines()[1:]] == [
        "corpora", "benchmarks"]


def test_a_dry_run_shows_each_parts_command_within_the_budget() -> None:
    result = _run("--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(PARTS)
    budgets = {}
    for part, line in zip(PARTS, lines):
        match = re.match(rf"gpu-check: {part}: dry run, budget (\d+) s: (.*)", line)
        assert match, line
        budgets[part] = int(match.group(1))
        command = match.group(2)
        # the checkout on PYTHONPATH, the plugin by name: the GPU machine has no install
        assert f"PYTHONPATH={ROOT}:{ROOT}/tools" in command
        assert "-m pytest -p harness.plugin -p gpu_check --gpu-check-tally=" in command
    assert sum(budgets.values()) <= 420  # 8 minutes with the 10 s to stop each and the start
    specs, corpora, devices, benchmarks = lines
    assert "specs --harness-devices=cuda" in specs
    assert "--harness-dtypes=float64,float32,float16,bfloat16,complex128,complex64" in specs
    assert "-m 'not devices'" in specs and "-m devices" in devices
    assert "tests/test_planted_bugs.py tests/test_tricky.py --corpus-device=cuda" in corpora
    assert "-k 'not -2]'" in corpora  # seeds 0 and 1
    assert "--benchmark-only --harness-devices=cuda,cpu" in benchmarks


def test_the_budget_is_shared_between_the_parts() -> None:
    result = _run("--dry-run", "--budget", "100")
    budgets = [int(b) for b in re.findall(r"budget (\d+) s", result.stdout)]
    assert budgets == [40, 33, 12, 15]


@pytest.mark.parametrize(("args", "message"), [
    (("--parts", "spec"), "unknown part 'spec'"),
    (("--device", "tpu"), "--device is cuda or cpu"),
    (("--budget", "soon"), "--budget is a number of seconds"),
    (("--fast",), "unknown argument: --fast"),
])
def test_a_bad_argument_is_refused(args, message) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_rehearsal_on_the_cpu_times_the_benchmarks_and_prints_their_ratios(tmp_path) -> None:
    result = _run("--device", "cpu", "--parts", "benchmarks", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + (tmp_path / "benchmarks.log").read_text()
    lines = result.stdout.splitlines()
    assert lines[0].startswith("gpu-check: on the CPU (a rehearsal")
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary and summary.groups()[:4] == ("benchmarks", "8", "0", "0"), lines[-1]
    rows = [ROW.fullmatch(line) for line in lines[2:-1]]
    assert all(rows) and len(rows) == 8, lines
    assert {row.group(1) for row in rows} >= {"linear_mse", "attention", "conv2d"}
    assert all(row.group(2) == "cpu" and float(row.group(3)) > 0 for row in rows)
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    assert {b["extra_info"]["spec"] for b in report["benchmarks"]} >= {"linear_mse", "attention"}


def test_a_part_that_outruns_its_budget_is_stopped_and_fails(tmp_path) -> None:
    # 15% of 7 s: the part is stopped while pytest starts
    result = _run("--device", "cpu", "--parts", "benchmarks", "--budget", "7",
                  "--out", str(tmp_path))
    assert result.returncode == 1
    summary = SUMMARY.fullmatch(result.stdout.splitlines()[-1])
    assert summary, result.stdout
    assert summary.group(6) == "1" and summary.group(7) == ": STOPPED at its budget"


def test_the_devices_part_has_nothing_to_rehearse_on_the_cpu(tmp_path) -> None:
    result = _run("--device", "cpu", "--parts", "devices", "--out", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1].startswith("gpu-check: devices: skipped (the devices")


# --- tools/gpu_check.py ------------------------------------------------------------------------

def test_the_helpers_doctests_pass() -> None:
    failed, attempted = doctest.testmod(gpu_check)
    assert attempted >= 5 and failed == 0


def test_the_tally_counts_each_outcome_and_names_each_failure(pytester, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    pytester.makepyfile(test_outcomes="""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")

        def test_passes(): pass
        def test_fails(): assert 1 == 2, "one is not two"
        def test_skips(): pytest.skip("not here")
        def test_errors(broken): pass
    """)
    tally = tmp_path / "tally"
    result = pytester.runpytest("-p", "gpu_check", f"--gpu-check-tally={tally}",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1)
    assert dict(gpu_check.counts(tally)) == {"passed": 1, "failed": 2, "skipped": 1}
    assert gpu_check.failures(tally) == [
        "test_outcomes.py::test_fails: AssertionError: one is not two",
        "test_outcomes.py::test_errors: RuntimeError: setup broke"]
    summary = gpu_check.summary("corpora", tally, 3.2, 1, 100)
    assert summary == "gpu-check: corpora: 1 passed, 2 failed, 1 skipped in 3 s (budget 100 s)"
    assert not gpu_check.passed(tally, 1)


def test_the_summary_command_lists_the_failures_above_the_line(tmp_path, capsys) -> None:
    tally = tmp_path / "tally"
    tally.write_text("passed\ta\nfailed\tspecs/x.toml::x::analytic[cuda-float32]\tGradient of "
                     "'x' is wrong\n")
    assert gpu_check.main(["summary", "specs", str(tally), "9.6", "1", "180"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "gpu-check: specs: FAILED specs/x.toml::x::analytic[cuda-float32]: Gradient of 'x' "
        "is wrong",
        "gpu-check: specs: 1 passed, 1 failed, 0 skipped in 10 s (budget 180 s)"]
    assert gpu_check.main(["summary", "specs", str(tmp_path / "none"), "1", "5", "9"]) == 1
    assert capsys.readouterr().out.endswith(": no tests collected\n")


def test_the_plugin_is_named_only_where_no_entry_point_loads_it(monkeypatch) -> None:
    from importlib.metadata import EntryPoint

    ours = EntryPoint("harness", "harness.plugin", "pytest11")
    other = EntryPoint("xdist.plugin", "xdist.plugin", "pytest11")
    monkeypatch.setattr(gpu_check.metadata, "entry_points", lambda group: [other, ours])
    assert gpu_check.plugin_args() == []  # installed: a second registration is an error
    monkeypatch.setattr(gpu_check.metadata, "entry_points", lambda group: [other])
    assert gpu_check.plugin_args() == ["-p", "harness.plugin"]


def test_the_cuda_probe_says_why_not(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    available, text = gpu_check.cuda()
    assert not available and text.startswith(f"CUDA not available (torch {torch.__version__}")
