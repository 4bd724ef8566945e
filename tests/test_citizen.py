"""The plugin as a good citizen in a user's project (issue 13), point by point.

Each test builds a small project with pytester. Those that must see the process as a
user's shell starts it (environment variables read at import, ``sys.path``) run
pytest or ``python -m harness`` in a subprocess; the others run in-process.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.load.whitelist import ATTRIBUTES, CONSTANTS, FUNCTIONS
from harness.plugin import CI_VARIABLES, PROFILES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SQUARE = """
[square]
doc = "the square, by hand"
forward = "x ** 2"
backward.x = "grad * 2 * x"
inputs.x = { shape = ["n"] }
"""
WRONG = """
[wrong]
forward = "x ** 2"
backward.x = "grad * x"
inputs.x = { shape = ["n"] }
"""
QUICK = ("-p", "no:cacheprovider", "--harness-devices=cpu", "--harness-checks=analytic",
         "--harness-dtypes=float64")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUICK, *args)


def shell(pytester: pytest.Pytester, *command: str | os.PathLike,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A command as a user's shell runs it in the project (the venv's scripts, not
    ``python -m``, which would put the working folder on sys.path)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in CI_VARIABLES and not k.startswith(("PYTEST_", "HYPOTHESIS"))}
    return subprocess.run([str(part) for part in command], cwd=pytester.path, text=True,
                          capture_output=True, env={**environment, "COLUMNS": "250",
                                                    **(env or {})},
                          timeout=600, check=False)


# ------------------------------------------------------------- 1. Hypothesis isolation

GIVEN_TEST = """
import json
import os

from hypothesis import given, settings, strategies as st

calls = []


@given(st.integers())
def test_property(n):
    calls.append(n)


def test_zz_report():
    current = settings.default
    seen = {
        "profile": settings.get_current_profile_name(), "calls": len(calls),
        "max_examples": current.max_examples, "derandomize": current.derandomize,
        "database": current.database is None, "deadline": str(current.deadline),
    }
    with open(os.environ["SEEN"], "w") as file:
        json.dump(seen, file)
"""


# Four subprocesses (each imports torch); the local case is also run end to end below.
@pytest.mark.parametrize("ci", [pytest.param(False, marks=pytest.mark.heavy), True],
                         ids=["local", "ci"])
def test_a_users_given_test_runs_as_without_the_plugin(pytester, write, ci):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "tests" / "test_property.py", GIVEN_TEST)
    env = {"CI": "true"} if ci else {}
    seen = {}
    for label, args in (("without", ["-p", "no:harness"]),
                        ("with", ["--harness-devices=cpu", "--harness-max-examples=2"])):
        out = pytester.path / f"{label}.json"
        result = shell(pytester, BIN / "pytest", "-p", "no:cacheprovider", *args,
                       env={**env, "SEEN": str(out)})
        assert result.returncode == 0, result.stdout + result.stderr
        seen[label] = json.loads(out.read_text())
    assert seen["with"] == seen["without"]
    expected = ("ci", 100, True, True) if ci else ("default", 100, False, False)
    assert (seen["with"]["profile"], seen["with"]["calls"], seen["with"]["derandomize"],
            seen["with"]["database"]) == expected


def test_hypothesis_builtin_profiles_are_left_alone(pytester):
    code = (
        "from hypothesis import settings\n"
        "before = {name: repr(settings.get_profile(name)) for name in ('default', 'ci')}\n"
        "import harness.plugin\n"
        "after = {name: repr(settings.get_profile(name)) for name in ('default', 'ci')}\n"
        "print(before == after, settings.get_current_profile_name())\n"
    )
    result = shell(pytester, sys.executable, "-c", code, env={"CI": "true"})
    assert result.stdout.split() == ["True", "ci"], result.stderr


@pytest.mark.parametrize(("ci", "examples", "header"), [
    (False, PROFILES["harness-dev"]["max_examples"], "profile=harness-dev seed="),
    (True, PROFILES["harness-ci"]["max_examples"], "profile=harness-ci derandomized"),
])
def test_harness_items_get_the_harness_profiles(pytester, write, monkeypatch, ci, examples,
                                                header):
    if ci:
        monkeypatch.setenv("CI", "true")
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"harness *: devices=cpu dtypes=float64 {header}*",
        f"specs/sq.toml::square::analytic[[]cpu-float64[]] PASSED ({examples} examples, "
        f"0 discarded)*",
    ])


def test_a_profile_the_user_names_drives_the_harness_items(pytester, write):
    write(pytester.path / "conftest.py", """
        from hypothesis import settings

        settings.register_profile("tiny", max_examples=3, deadline=None)
        """)
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "specs" / "wrong.toml", WRONG)
    result = run(pytester, "-v", "--hypothesis-profile=tiny", "--harness-seed=4")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "harness *: * profile=tiny seed=4 *",
        "specs/sq.toml::square::analytic[[]cpu-float64[]] PASSED (3 examples, 0 discarded)*",
        'Reproduce: pytest "specs/wrong.toml::wrong::analytic[[]cpu-float64[]]" '
        "--harness-seed=4 --hypothesis-profile=tiny",
    ])


def test_show_statistics_reports_the_harness_items(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = run(pytester, "--hypothesis-show-statistics", "--harness-max-examples=4")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*Hypothesis Statistics*",
        "specs/sq.toml::square::analytic[[]cpu-float64[]]:",
        "",
        "  - during generate phase (* seconds):",
        "*4 passing, 0 failing*",
        "  - Stopped because settings.max_examples=4",
    ])


# ------------------------------------------------------------- 3. one discovery rule

def test_a_spec_file_named_on_the_command_line_is_collected(pytester, write):
    write(pytester.path / "experiments" / "one.toml", SQUARE)
    write(pytester.path / "experiments" / "two.py", """
        from harness import Input, Spec

        double = Spec(forward=lambda x: 2 * x, inputs={"x": Input(["n"])},
                      backward={"x": lambda grad: 2 * grad})
        """)
    result = run(pytester, "--co", "-q", "experiments/one.toml", "experiments/two.py")
    assert [line for line in result.stdout.lines if "::" in line] == [
        "experiments/one.toml::square::analytic[cpu-float64]",
        "experiments/two.py::double::analytic[cpu-float64]",
    ]
    result = run(pytester, "--co", "-q", "experiments")  # a folder outside harness_specs
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_test_module_named_on_the_command_line_stays_a_test_module(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "tests" / "test_mine.py", "def test_mine():\n    assert True\n")
    result = run(pytester, "-v", "tests/test_mine.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["tests/test_mine.py::test_mine PASSED*"])


def test_a_named_module_without_specs_keeps_its_tests_and_doctests(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "tools" / "helpers.py", '''
        def double(x):
            """
            >>> double(2)
            4
            """
            return 2 * x


        def test_double():
            assert double(3) == 6
        ''')
    result = run(pytester, "-v", "--doctest-modules", "tools/helpers.py")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tools/helpers.py::helpers.double PASSED*",
                                 "tools/helpers.py::test_double PASSED*"])


def test_conftest_and_hidden_files_are_never_spec_files(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    for name in ("conftest.py", "_helpers.py", ".hidden.py"):
        write(pytester.path / "specs" / name, "raise RuntimeError('not a spec module')\n")
    write(pytester.path / "specs" / ".cache" / "old.toml", "not toml at all [")
    ids = [line for line in run(pytester, "--co", "-q", "--noconftest").stdout.lines
           if "::" in line]
    assert ids == ["specs/sq.toml::square::analytic[cpu-float64]"]
    validate = shell(pytester, BIN / "harness", "validate")
    assert (validate.returncode, validate.stdout) == (0, "1 valid, 0 invalid specs\n"), \
        validate.stderr
    validate = shell(pytester, BIN / "harness", "validate", "specs")
    assert (validate.returncode, validate.stdout) == (0, "1 valid, 0 invalid specs\n")


def test_the_cli_reads_the_spec_folders_from_the_pytest_configuration(pytester, write):
    write(pytester.path / "gradients" / "sq.toml", SQUARE)
    write(pytester.path / "specs" / "wrong.toml", WRONG.replace("inputs.x", "inputz.x"))
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nharness_specs = ["gradients"]\n')
    validate = shell(pytester, BIN / "harness", "validate")
    assert (validate.returncode, validate.stdout) == (0, "1 valid, 0 invalid specs\n"), \
        validate.stderr
    listed = shell(pytester, BIN / "harness", "list")
    assert listed.stdout.splitlines()[:2] == ["square  gradients/sq.toml:1",
                                              "    the square, by hand"]
    outside = shell(pytester, BIN / "harness", "validate", "specs")
    assert outside.returncode == 2
    assert outside.stderr == (
        "error: specs: no spec files — it is outside the spec folders (gradients); add it to "
        "harness_specs in the pytest configuration, or name its files\n")
    named = shell(pytester, BIN / "harness", "validate", "specs/wrong.toml")
    assert named.returncode == 1 and "unknown key 'inputz'" in named.stdout


def test_bench_plot_finds_the_specs_pytest_collects(pytester, write):
    pytest.importorskip("matplotlib")
    write(pytester.path / "gradients" / "sq.toml", SQUARE)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nharness_specs = ["gradients"]\n')
    result = shell(pytester, BIN / "harness", "bench-plot", "squar", "--out", "plot.png")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "bench-plot: error: no spec 'squar' in gradients (did you mean 'square'?)")
    result = shell(pytester, BIN / "harness", "bench-plot", "square", "--devices", "cpu",
                   "--min-exp", "3", "--max-exp", "4", "--min-time", "0", "--out", "plot.png")
    assert result.returncode == 0, result.stderr
    assert (pytester.path / "plot.png").read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------- 4. imports like pytest's

OWN_PACKAGE = """
import torch


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x ** 2
"""
CUBE_SPEC = """
from harness import Input, Spec
from {package} import Cube

cube = Spec(forward=lambda x: Cube.apply(x), inputs={{"x": Input(["n"])}},
            backward={{"x": lambda grad, x: grad * 3 * x ** 2}}, doc="x^3 by hand")
"""


# The checkout layout is also run end to end below (two subprocesses each).
@pytest.mark.parametrize("layout", [pytest.param("checkout", marks=pytest.mark.heavy), "src"])
def test_a_spec_module_imports_the_projects_own_package(pytester, write, layout):
    folder = pytester.path / ("src" if layout == "src" else ".") / "mypkg_citizen"
    write(folder / "__init__.py", OWN_PACKAGE)
    write(pytester.path / "specs" / "cube.py", CUBE_SPEC.format(package="mypkg_citizen"))
    if layout == "src":
        pytester.makeini("[pytest]\npythonpath = src\n")
    result = shell(pytester, BIN / "pytest", *QUICK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    validate = shell(pytester, BIN / "harness", "validate")
    assert (validate.returncode, validate.stdout) == (0, "1 valid, 0 invalid specs\n"), \
        validate.stderr


def test_a_missing_package_says_what_to_do(pytester, write):
    write(pytester.path / "specs" / "cube.py", CUBE_SPEC.format(package="not_installed_pkg"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "specs/cube.py:2: spec 'cube': the file failed to import: ModuleNotFoundError: No "
        "module named 'not_installed_pkg' — install the package that provides "
        "'not_installed_pkg' (pip install -e . in its project), or add the folder that holds "
        'it to pythonpath in the pytest configuration (e.g. pythonpath = [[]"src"[]] under '
        "[[]tool.pytest.ini_options[]]); specs and . (the spec module's folder and the "
        "rootdir) are on sys.path already; the other spec files still load",
    ])


# ------------------------------------------------------------------ 5. never interrupted

BROKEN_MODULE = "import torch\nraise RuntimeError('the kernel is not built')\n"


@pytest.mark.parametrize("named", [False, True], ids=["collected", "named"])
def test_a_spec_module_that_fails_to_import_is_one_failing_item(pytester, write, named):
    write(pytester.path / "specs" / "broken.py", BROKEN_MODULE)
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    paths = ["specs/broken.py", "specs/sq.toml"] if named else []
    result = run(pytester, "--doctest-modules", *paths)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*Interrupted*")
    result.stdout.no_fnmatch_line("*error* during collection*")
    assert ("specs/broken.py:2: spec 'broken': the file failed to import: RuntimeError: "
            "the kernel is not built — fix the module; the other spec files still load"
            ) in result.stdout.lines
    result.stdout.fnmatch_lines(["FAILED specs/broken.py::broken - *"])


def test_a_bad_spec_in_a_module_leaves_its_neighbours(pytester, write):
    write(pytester.path / "specs" / "mod.py", """
        from harness import Input, Spec

        before = Spec(forward=lambda x: 2 * x, inputs={"x": Input(["n"])},
                      backward={"x": lambda grad: 2 * grad})
        bad = Spec(forward=lambda x: x, inputs={"x": Input(["n"], low=1.0, high=0.0)})
        after = Spec(forward=lambda x: 3 * x, inputs={"x": Input(["n"])},
                     backward={"x": lambda grad: 3 * grad})
        """)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "specs/mod.py::before::analytic[[]cpu-float64[]] PASSED*",
        "specs/mod.py::bad FAILED*",
        "specs/mod.py::after::analytic[[]cpu-float64[]] PASSED*",
    ])
    assert ("specs/mod.py:5: spec 'bad': low=1.0 must be below high=0.0 — swap them or "
            "widen the range") in result.stdout.lines


# ---------------------------------------------------------------------- 6. a free name

def test_the_distribution_is_pytest_gradharness_and_provides_the_plugin(pytester):
    distribution = importlib.metadata.distribution("pytest-gradharness")
    plugins = [entry for entry in distribution.entry_points if entry.group == "pytest11"]
    assert [(entry.name, entry.value) for entry in plugins] == [("harness", "harness.plugin")]
    assert [entry.value for entry in distribution.entry_points
            if entry.group == "console_scripts"] == ["harness.__main__:main"]
    result = pytester.runpytest("--co", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["plugins: *gradharness-*"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install pytest-gradharness" in readme
    assert "pip install harness" not in readme


def test_no_message_or_doc_tells_users_to_install_harness():
    texts = [path for folder in ("harness", "docs") for path in (ROOT / folder).rglob("*")
             if path.suffix in (".py", ".md")] + [ROOT / "README.md"]
    offending = [str(path.relative_to(ROOT)) for path in texts
                 if "pip install harness" in path.read_text(encoding="utf-8")
                 or "pip install 'harness[" in path.read_text(encoding="utf-8")]
    assert offending == []


# ------------------------------------------------------------------- 7. quiet defaults

@pytest.mark.parametrize("cuda", [False, True], ids=["no-cuda", "cuda"])
def test_default_devices_are_the_cpu_plus_cuda_where_available(pytester, write, monkeypatch,
                                                                cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--co",
                                "--harness-checks=analytic", "--harness-dtypes=float64")
    result.stdout.fnmatch_lines(["harness *: devices=auto *"])
    items = [line.strip() for line in result.stdout.lines if "<SpecItem" in line]
    assert items == ["<SpecItem analytic[cpu-float64]>"] + (
        ["<SpecItem analytic[cuda-float64]>"] if cuda else [])


def test_cuda_named_where_absent_is_skipped(pytester, write, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--harness-checks=analytic",
                                "--harness-dtypes=float64", "--harness-devices=cuda", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] specs/sq.toml:1: CUDA not available"])


def test_heavy_tests_are_deselected_unless_asked_for(pytester, write):
    shutil.copy(ROOT / "tests" / "conftest.py", pytester.path / "conftest.py")
    pytester.makeini("[pytest]\nmarkers =\n    heavy: more seeds\naddopts = --strict-markers\n")
    write(pytester.path / "test_some.py", """
        import pytest


        @pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.heavy)])
        def test_seed(seed):
            assert seed in (0, 1)
        """)
    default = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    default.assert_outcomes(passed=1, deselected=1)
    default.stdout.no_fnmatch_line("*SKIPPED*")
    pytester.runpytest("-p", "no:cacheprovider", "-m", "heavy").assert_outcomes(
        passed=1, deselected=1)
    pytester.runpytest("-p", "no:cacheprovider", "-m", "heavy or not heavy").assert_outcomes(
        passed=2)
    pytester.runpytest("-p", "no:cacheprovider", "-m", "not heavy").assert_outcomes(
        passed=1, deselected=1)


# -------------------------------------------------------------------- 8. visible work

ABS_AT_ITS_KINK = """
[absval]
forward = "abs(x)"
inputs.x = { shape = [2] }
[[absval.examples]]
x = [0.0, 1.0]
"""


def test_verbose_shows_examples_and_discards_and_the_summary_line_totals(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "specs" / "abs.toml", ABS_AT_ITS_KINK)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "--harness-devices=cpu",
                                "--harness-dtypes=float64", "--harness-max-examples=3",
                                "--harness-checks=analytic,finite_difference",
                                "--harness-seed=1")
    result.assert_outcomes(passed=3)
    lines = {line.split(" PASSED ")[0]: line.split(" PASSED ")[1].split(")")[0] + ")"
             for line in result.stdout.lines if " PASSED (" in line}
    assert lines["specs/sq.toml::square::analytic[cpu-float64]"] == "(3 examples, 0 discarded)"
    abs_counts = lines["specs/abs.toml::absval::finite_difference[cpu-float64]"]
    examples, discarded = (int(word) for word in abs_counts.strip("()").replace(",", "").split()
                           if word.isdigit())
    assert examples == 4 and discarded >= 1  # examples[0] sits on the kink at 0
    total = 3 + 3 + examples
    result.stdout.fnmatch_lines([
        f"*- harness: 2 specs, 3 items, {total} examples ({discarded} discarded); slowest: "
        f"specs/*.toml::* *s, specs/*.toml::* *s -*",
    ])


def test_no_summary_line_without_harness_items(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*harness: *spec*")


def test_a_check_shrinking_for_a_while_says_so_once(pytester, write, monkeypatch):
    import harness.plugin_items

    monkeypatch.setattr(harness.plugin_items, "SHRINK_NOTICE_S", 0.0)
    write(pytester.path / "specs" / "wrong.toml", WRONG)
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = run(pytester, "--harness-max-examples=10")
    result.assert_outcomes(passed=1, failed=1)
    notices = [line for line in result.stdout.lines if "shrinking it" in line]
    assert notices == [
        "specs/wrong.toml::wrong::analytic[cpu-float64]: found a failing example 0 s ago, "
        "shrinking it to a minimal one (at most 20 s)..."]


def test_a_quick_check_says_nothing_about_shrinking(pytester, write):
    write(pytester.path / "specs" / "wrong.toml", WRONG)
    result = run(pytester, "--harness-max-examples=10")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*shrinking it*")


# ---------------------------------------------------------- 9. docs reachable when installed

def test_formulas_prints_the_whitelist(pytester):
    result = shell(pytester, BIN / "harness", "formulas")
    assert result.returncode == 0, result.stderr
    words = set(result.stdout.replace(",", " ").replace("(", " ").replace(")", " ").split())
    assert set(FUNCTIONS) | set(ATTRIBUTES) | set(CONSTANTS) <= words


def test_a_formula_error_names_the_formulas_command(pytester, write):
    write(pytester.path / "specs" / "typo.toml", SQUARE.replace("2 * x", "2 * coss(x)"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*unknown function 'coss' — did you mean 'cos'? (the whitelist: python -m harness "
        "formulas)"])


# ------------------------------------------------------------------------ end to end

USER_PYPROJECT = """
[project]
name = "mypkg-e2e"
version = "0.0.1"

[tool.pytest.ini_options]
addopts = "--harness-max-examples=3"
"""
USER_SPECS_TOML = SQUARE + """
[broken]
forwrad = "x"
inputs.x = { shape = [] }
"""


def test_end_to_end_in_a_users_project(pytester, write):
    """A project with its own package (not installed), a Python spec module importing it,
    a TOML spec file with a bad spec, and an unrelated @given test."""
    write(pytester.path / "pyproject.toml", USER_PYPROJECT)
    write(pytester.path / "mypkg_e2e" / "__init__.py", OWN_PACKAGE)
    write(pytester.path / "specs" / "cube.py", CUBE_SPEC.format(package="mypkg_e2e"))
    write(pytester.path / "specs" / "more.toml", USER_SPECS_TOML)
    write(pytester.path / "tests" / "test_property.py", GIVEN_TEST)
    seen = pytester.path / "seen.json"
    env = {"SEEN": str(seen)}

    plain = shell(pytester, BIN / "pytest", "-p", "no:cacheprovider", env=env)
    output = plain.stdout
    assert plain.returncode == 1, output + plain.stderr
    assert [line[:31] for line in output.splitlines() if line.startswith("FAILED")] == [
        "FAILED specs/more.toml::broken "]
    assert any(line.startswith("specs/more.toml:8: spec 'broken': unknown key 'forwrad' (did "
                               "you mean 'forward'?)") for line in output.splitlines())
    assert "- harness: 3 specs, " in output and "CUDA" not in output
    assert "Interrupted" not in output
    assert json.loads(seen.read_text())["calls"] == 100  # Hypothesis' own default

    timed = shell(pytester, BIN / "pytest", "-p", "no:cacheprovider", "--benchmark-only",
                  "--benchmark-max-time=0.01", "--benchmark-json=bench.json", env=env)
    assert timed.returncode == 1, timed.stdout + timed.stderr
    saved = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    assert sorted(bench["fullname"] for bench in saved) == [
        "specs/cube.py::cube::benchmark[cpu]", "specs/more.toml::square::benchmark[cpu]"]
    assert "cheap-gradient bound 5: " in timed.stdout
    assert "2 passed" in timed.stdout and "1 failed" in timed.stdout

    one = shell(pytester, BIN / "pytest", "-p", "no:cacheprovider", "specs/more.toml", "-q")
    assert one.returncode == 1
    assert "::cube::" not in one.stdout and "test_property" not in one.stdout

    validate = shell(pytester, sys.executable, "-m", "harness", "validate")
    assert validate.returncode == 1
    assert validate.stdout.splitlines() == [
        "specs/more.toml:8: spec 'broken': unknown key 'forwrad' (did you mean 'forward'?) — "
        "the keys of a spec are doc, forward, backward, jvp, reference, inputs, dims, params, "
        "checks, dtypes, tolerances, twice_differentiable, benchmark, nondet_tol, "
        "nondifferentiable_outputs, examples",
        "2 valid, 1 invalid spec"]

    listed = shell(pytester, BIN / "harness", "list")
    assert listed.returncode == 1
    lines = listed.stdout.splitlines()
    assert lines[:3] == ["cube  specs/cube.py:4", "    x^3 by hand", "    inputs: x['n']"]
    assert "square  specs/more.toml:1" in lines and "    the square, by hand" in lines
