"""The pytest plugin, run in-process with pytester: collection, options, reports, reproduction."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
import torch

import harness
from harness.checks import CHECKS
from harness.plugin_options import DEFAULT_TIMEOUT, HarnessOptions
from harness.verify import EXAMPLE_TIMEOUT

LINEAR_MSE = """
[linear_mse]
doc = "MSE of a linear model, the seed's hand-written training step"
forward = "mean((X @ W + b - Y) ** 2)"
backward.W = "grad * 2 * X.mT @ (X @ W + b - Y) / N"
backward.b = "grad * 2 * mean(X @ W + b - Y, dim=0, keepdim=True)"
inputs.X = { shape = ["N", "D"], requires_grad = false }
inputs.W = { shape = ["D", 1] }
inputs.b = { shape = [1, 1] }
inputs.Y = { shape = ["N", 1], requires_grad = false }
dims = { N = [1, 8], D = [1, 4] }
"""
SQUARE = """
[square]
forward = "x ** 2"
backward.x = "grad * 2 * x"
inputs.x = { shape = ["n"] }
"""
SEED_IDS = [
    "specs/seed.toml::linear_mse::analytic[cpu-float64]",
    "specs/seed.toml::linear_mse::analytic[cpu-float32]",
    "specs/seed.toml::linear_mse::finite_difference[cpu-float64]",
    "specs/seed.toml::linear_mse::finite_difference[cpu-float32]",
    "specs/seed.toml::linear_mse::gradcheck[cpu]",
    "specs/seed.toml::linear_mse::taylor[cpu-float64]",
    "specs/seed.toml::linear_mse::taylor[cpu-float32]",
    "specs/seed.toml::linear_mse::forward_mode[cpu-float64]",
    "specs/seed.toml::linear_mse::forward_mode[cpu-float32]",
    "specs/seed.toml::linear_mse::layouts[cpu-float64]",
    "specs/seed.toml::linear_mse::layouts[cpu-float32]",
    "specs/seed.toml::linear_mse::batched[cpu-float64]",
    "specs/seed.toml::linear_mse::batched[cpu-float32]",
]  # no undefined items: the TOML forward is one expression, so one output
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA behaviour")


def wrong(name: str, example: bool = False) -> str:
    """A spec whose backward formula is wrong (half the true gradient)."""
    text = f"""
        [{name}]
        forward = "x ** 2"
        backward.x = "grad * x"
        inputs.x = {{ shape = ["n"] }}
        """
    if example:
        text += f"""
        [[{name}.examples]]
        x = [1.5, -2.0]
        """
    return textwrap.dedent(text)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--harness-max-examples=5", *args)


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    """The node ids that ``--co -q`` lists."""
    result = run(pytester, "--co", "-q", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return [line for line in result.stdout.lines if "::" in line]


@pytest.fixture
def seed_specs(pytester, write):
    write(pytester.path / "specs" / "seed.toml", LINEAR_MSE)
    return pytester


# --------------------------------------------------------------------------------- collection


def test_node_ids(seed_specs):
    result = run(seed_specs, "--co", "-q", "--harness-devices=cpu")
    assert result.stdout.lines[: len(SEED_IDS) + 1] == [*SEED_IDS, ""]
    result.stdout.fnmatch_lines([f"{len(SEED_IDS)} tests collected in *"])


def test_plugin_comes_from_the_entry_point(seed_specs):
    result = run(seed_specs, "--co", "-q", "-p", "no:harness")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # its options are gone with it
    result = run(seed_specs, "--co", "-q", "--harness-devices=cpu")
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("target", "count"),
    [
        ("specs", 13),
        ("specs/seed.toml", 13),
        ("specs/seed.toml::linear_mse", 13),
        ("specs/seed.toml::linear_mse::gradcheck[cpu]", 1),
    ],
)
def test_paths_and_node_ids_select_items(seed_specs, write, target, count):
    write(seed_specs.path / "specs" / "other.toml", SQUARE)
    if target == "specs":
        count += 13  # the square spec's items: as many as linear_mse's
    assert len(collected(seed_specs, "--harness-devices=cpu", target)) == count


def test_float64_only_checks_get_one_item_per_device(seed_specs):
    assert collected(seed_specs, "--harness-devices=cpu,cuda", "--harness-checks=gradcheck") == [
        "specs/seed.toml::linear_mse::gradcheck[cpu]",
        "specs/seed.toml::linear_mse::gradcheck[cuda]",
    ]


def test_items_of_the_checks_that_need_something(pytester, write):
    write(pytester.path / "specs" / "full.toml", """
        [full]
        forward = "sin(x)"
        reference = "sin(x) * 1"
        inputs.x = { shape = ["n"] }
        twice_differentiable = true
        """)
    assert collected(pytester, "--harness-checks=analytic,reference,gradgradcheck,devices",
                     "--harness-devices=cpu,cuda") == [
        "specs/full.toml::full::reference[cpu-float64]",
        "specs/full.toml::full::reference[cpu-float32]",
        "specs/full.toml::full::reference[cuda-float64]",
        "specs/full.toml::full::reference[cuda-float32]",
        "specs/full.toml::full::gradgradcheck[cpu]",
        "specs/full.toml::full::gradgradcheck[cuda]",
        "specs/full.toml::full::devices[cuda-float64]",
        "specs/full.toml::full::devices[cuda-float32]",
    ]


def test_spec_checks_and_dtypes_limit_its_items(pytester, write):
    write(pytester.path / "specs" / "limited.toml", """
        [limited]
        forward = "x ** 2"
        backward.x = "grad * 2 * x"
        inputs.x = { shape = ["n"] }
        checks = ["analytic", "finite_difference"]
        dtypes = ["float16", "float64"]
        """)
    assert collected(pytester, "--harness-devices=cpu",
                     "--harness-dtypes=float64,float32,float16") == [
        "specs/limited.toml::limited::analytic[cpu-float64]",
        "specs/limited.toml::limited::analytic[cpu-float16]",
        "specs/limited.toml::limited::finite_difference[cpu-float64]",
    ]


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        pytest.param(["--harness-dtypes=float32"], [
            "analytic[cpu-float32]", "finite_difference[cpu-float32]", "gradcheck[cpu]",
            "taylor[cpu-float32]", "forward_mode[cpu-float32]", "layouts[cpu-float32]",
            "batched[cpu-float32]"], id="dtypes"),
        pytest.param(["--harness-checks=analytic,taylor"], [
            "analytic[cpu-float64]", "analytic[cpu-float32]", "taylor[cpu-float64]",
            "taylor[cpu-float32]"], id="checks"),
        pytest.param(["--harness-checks=taylor,analytic", "--harness-dtypes=float64"], [
            "analytic[cpu-float64]", "taylor[cpu-float64]"], id="checks-in-registry-order"),
        pytest.param(["--harness-devices=cpu,cuda", "--harness-checks=analytic",
                      "--harness-dtypes=float64"], [
            "analytic[cpu-float64]", "analytic[cuda-float64]"], id="devices"),
        pytest.param(["--harness-devices= cuda , cpu ", "--harness-checks=analytic",
                      "--harness-dtypes=float64"], [
            "analytic[cuda-float64]", "analytic[cpu-float64]"], id="devices-spaces"),
    ],
)
def test_options_select_items(seed_specs, args, ids):
    args = ["--harness-devices=cpu", *args]  # a later --harness-devices wins
    assert collected(seed_specs, *args) == [f"specs/seed.toml::linear_mse::{i}" for i in ids]


@pytest.mark.parametrize(
    ("ini", "args", "ids"),
    [
        pytest.param(
            "harness_devices = cpu\nharness_dtypes = float64\nharness_checks = analytic,gradcheck",
            [], ["analytic[cpu-float64]", "gradcheck[cpu]"], id="ini"),
        pytest.param(
            "harness_devices = cpu\nharness_dtypes = float64\nharness_checks = analytic",
            ["--harness-dtypes=float32", "--harness-checks=taylor"],
            ["taylor[cpu-float32]"], id="options-override-ini"),
    ],
)
def test_ini_twins_select_items(seed_specs, ini, args, ids):
    seed_specs.makeini(f"[pytest]\n{ini}\n")
    assert collected(seed_specs, *args) == [f"specs/seed.toml::linear_mse::{i}" for i in ids]


def test_ini_harness_specs_names_the_spec_folders(pytester, write):
    write(pytester.path / "gradients" / "a.toml", SQUARE)
    write(pytester.path / "more" / "b.toml", SQUARE.replace("square", "other"))
    write(pytester.path / "specs" / "ignored.toml", SQUARE.replace("square", "ignored"))
    write(pytester.path / "config.toml", "[tool]\nname = 'not a spec file'\n")
    pytester.makeini("[pytest]\nharness_specs = gradients more\n")
    ids = collected(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                    "--harness-dtypes=float64")
    assert ids == ["gradients/a.toml::square::analytic[cpu-float64]",
                   "more/b.toml::other::analytic[cpu-float64]"]


def test_files_outside_spec_folders_and_private_files_are_not_collected(pytester, write):
    write(pytester.path / "specs" / "a.toml", SQUARE)
    write(pytester.path / "specs" / "_helpers.py", "raise RuntimeError('not a spec module')\n")
    write(pytester.path / "specs" / "conftest.py", "")
    write(pytester.path / "pyproject.toml", "[project]\nname = 'user-project'\n")
    ids = collected(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                    "--harness-dtypes=float64")
    assert ids == ["specs/a.toml::square::analytic[cpu-float64]"]


# -------------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--harness-devices=gpu"],
                     "--harness-devices='gpu' is not one of auto, cpu, cuda (did you mean "
                     "'cpu'?)",
                     id="device"),
        pytest.param(["--harness-devices=cpu,tpu"],
                     "--harness-devices='tpu' is not one of auto, cpu, cuda (did you mean "
                     "'cpu'?)",
                     id="second-device"),
        pytest.param(["--harness-dtypes=float32,flot16"],
                     "--harness-dtypes='flot16' is not one of float64, float32, float16, bfloat16, "
                     "complex128, complex64 "
                     "(did you mean 'float16'?)", id="dtype"),
        pytest.param(["--harness-checks=analytc"],
                     "--harness-checks='analytc' is not one of analytic, reference, "
                     "finite_difference, gradcheck, gradgradcheck, taylor, forward_mode, devices, "
                     "layouts, batched, undefined (did you mean 'analytic'?)", id="check"),
        pytest.param(["--harness-devices=,"],
                     "--harness-devices is empty — give at least one of auto, cpu, cuda",
                     id="only-commas"),
        pytest.param(["--harness-max-examples=-1"],
                     "--harness-max-examples=-1 (or harness_max_examples) must be at least 0 "
                     "(0 runs the specs' explicit examples only)", id="max-examples"),
    ],
)
def test_bad_option_is_a_usage_error(seed_specs, args, message):
    result = run(seed_specs, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.stderr.lines
    result.stderr.no_fnmatch_line("*Traceback*")


def test_bad_ini_value_is_a_usage_error(seed_specs):
    seed_specs.makeini("[pytest]\nharness_dtypes = float64,double\n")
    result = run(seed_specs)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: --harness-dtypes='double' is not one of float64, float32, float16, bfloat16, "
            "complex128, complex64"
            in result.stderr.lines)


def test_max_examples_and_timeout_have_ini_twins_the_command_line_overrides(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    pytester.makeini("[pytest]\nharness_max_examples = 3\nharness_timeout = 120\n")
    options = ("-p", "no:cacheprovider", "-v", "--harness-devices=cpu",
               "--harness-dtypes=float64", "--harness-checks=analytic")
    from_ini = pytester.runpytest(*options)
    from_ini.stdout.fnmatch_lines(["*square::analytic*PASSED (3 examples, 0 discarded)*"])
    assert HarnessOptions(pytester.parseconfigure()).timeout == 120.0
    overridden = pytester.runpytest(*options, "--harness-max-examples=5")
    overridden.stdout.fnmatch_lines(["*square::analytic*PASSED (5 examples, 0 discarded)*"])


@pytest.mark.parametrize(("ini", "message"), [
    ("harness_max_examples = many", "harness_max_examples = 'many' in the ini file is not an "
                                    "integer — give one, e.g. harness_max_examples = 50"),
    ("harness_timeout = 1m", "harness_timeout = '1m' in the ini file is not a number — give "
                             "one, e.g. harness_timeout = 120"),
])
def test_a_bad_number_in_the_ini_file_is_a_usage_error(seed_specs, ini, message):
    seed_specs.makeini(f"[pytest]\n{ini}\n")
    result = seed_specs.runpytest("-p", "no:cacheprovider", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.stderr.lines


def test_the_default_timeout_is_verifys():
    assert DEFAULT_TIMEOUT == EXAMPLE_TIMEOUT


@pytest.mark.parametrize("name", ["devices", "dtypes", "checks"])
def test_empty_option_is_a_usage_error(seed_specs, name):
    result = run(seed_specs, "--co", f"--harness-{name}=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --harness-{name} is empty — give at least one of *"])


# ---------------------------------------------------------------------------------- CUDA items


@NO_CUDA
def test_cuda_items_are_collected_and_skipped(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    result = run(pytester, "--harness-checks=analytic,gradcheck", "-rs",
                 "--harness-devices=cpu,cuda")
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines(["SKIPPED [[]3[]] specs/sq.toml:1: CUDA not available"])
    result = run(pytester, "--harness-checks=analytic,gradcheck", "-v", "--harness-devices=cuda")
    result.stdout.fnmatch_lines([
        "specs/sq.toml::square::analytic[[]cuda-float64[]] SKIPPED (CUDA not*",
        "specs/sq.toml::square::analytic[[]cuda-float32[]] SKIPPED (CUDA not*",
        "specs/sq.toml::square::gradcheck[[]cuda[]] SKIPPED (CUDA not*",
    ])


# ---------------------------------------------------------------------------------- failures


def test_wrong_formula_fails_with_the_spec_name_in_the_summary(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "specs" / "wrong.toml", wrong("wrong_summary"))
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 "--harness-dtypes=float64", "-vv")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    assert (
        "FAILED specs/wrong.toml::wrong_summary::analytic[cpu-float64] - Gradient of 'x' is "
        "wrong in spec 'wrong_summary' [analytic, cpu, float64]: the analytic formula is likely "
        "wrong"
    ) in result.stdout.lines
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*harness/*.py*")


def test_failure_report_sections(pytester, write):
    write(pytester.path / "specs" / "wrong.toml", wrong("wrong_sections", example=True))
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=finite_difference",
                 "--harness-dtypes=float64", "--harness-seed=11")
    result.assert_outcomes(failed=0, passed=1)  # autograd is right: finite differences agree
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 "--harness-dtypes=float64", "--harness-seed=11")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*_ wrong_sections::analytic[[]cpu-float64[]] _*",
        "Gradient of 'x' is wrong in spec 'wrong_sections' [[]analytic, cpu, float64[]]: the "
        "analytic formula is likely wrong",
        "",
        "Mismatched elements: 2 / 2 (100.0%)",
        "Greatest absolute difference: * at index (*,) (up to * allowed: *)",
        "Greatest relative difference: 0.5 at index (*,) (up to * allowed)",
        "   index   analytic*autograd*finite difference",
        "*",
        "*",
        "Failing example (examples[[]0[]] of the spec): n=2; x=[[]1.5, -2.0[]]",
        "Cotangent (grad): [[]*, *[]]",
        "Spec: specs/wrong.toml:1",
        'Reproduce: pytest "specs/wrong.toml::wrong_sections::analytic[[]cpu-float64[]]" '
        "--harness-seed=11 --harness-max-examples=5 --hypothesis-profile=harness-dev",
    ], consecutive=True)


def test_markers_per_check(seed_specs):
    every = collected(seed_specs, "--harness-devices=cpu", "--strict-markers")
    assert every == SEED_IDS
    assert collected(seed_specs, "--harness-devices=cpu", "-m", "not gradcheck") == [
        node for node in SEED_IDS if "gradcheck" not in node]
    assert collected(seed_specs, "--harness-devices=cpu", "-m", "taylor or analytic") == [
        node for node in SEED_IDS if "::taylor[" in node or "::analytic[" in node]
    result = run(seed_specs, "--markers")
    for name in CHECKS:
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}: harness items of the {name} check*"])


def test_undefined_items_only_where_the_forward_may_return_several_tensors(pytester, write):
    write(pytester.path / "specs" / "outputs.toml", """
        [pair]
        forward = "(x * 2, sin(x))"
        inputs.x = { shape = ["n"] }

        [largest]
        forward = "topk(x, 1)"
        inputs.x = { shape = ["n"], unique = true }

        [single]
        forward = "sin(x) * 2"
        inputs.x = { shape = ["n"] }
        """)
    undefined = [node for node in collected(pytester, "--harness-devices=cpu",
                                            "--harness-dtypes=float64")
                 if "::undefined[" in node]
    assert undefined == ["specs/outputs.toml::pair::undefined[cpu-float64]",
                         "specs/outputs.toml::largest::undefined[cpu-float64]"]


def test_k_selects_by_spec_name(seed_specs, write):
    write(seed_specs.path / "specs" / "sq.toml", SQUARE)
    selected = collected(seed_specs, "--harness-devices=cpu", "-k", "linear_mse")
    assert selected == SEED_IDS
    selected = collected(seed_specs, "--harness-devices=cpu", "-k", "square and analytic")
    assert selected == ["specs/sq.toml::square::analytic[cpu-float64]",
                        "specs/sq.toml::square::analytic[cpu-float32]"]


# ------------------------------------------------------------------------------ help and header


def test_help_shows_every_option_with_its_default(pytester):
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    lines = result.stdout.lines
    start = lines.index("gradient harness (spec files):")
    end = lines.index("", start)
    blocks: dict[str, str] = {}
    for line in lines[start + 1 : end]:
        if line.startswith("  --"):
            option = line.split()[0].split("=")[0]
            blocks[option] = line
        else:
            blocks[option] += " " + line.strip()
    assert {
        "--harness-devices", "--harness-dtypes", "--harness-checks", "--harness-seed",
        "--harness-max-examples",
    } <= set(blocks)
    for option, text in blocks.items():
        assert "Default:" in text, option
    assert "Default: 'auto' (ini: harness_devices)" in blocks["--harness-devices"]
    assert "Default: 'float64,float32' (ini: harness_dtypes)" in blocks["--harness-dtypes"]
    assert "Default: 'all' (ini: harness_checks)" in blocks["--harness-checks"]
    for ini in ("harness_devices", "harness_dtypes", "harness_checks", "harness_specs"):
        result.stdout.fnmatch_lines([f"  {ini} (*):*"])


def test_help_does_not_import_torch(pytester):
    code = (
        "import sys, pytest\n"
        "pytest.main(['--help', '-p', 'no:cacheprovider'])\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=pytester.path,
        timeout=300, check=False,
    ).stdout
    assert "torch imported: False" in output


def test_report_header(seed_specs):
    result = run(seed_specs, "--co", "--harness-devices=cpu", "--harness-seed=7")
    header = f"harness {harness.__version__}: devices=cpu dtypes=float64,float32 " \
             f"profile=harness-dev seed=7 specs=specs"
    assert header in result.stdout.lines
    assert [line for line in result.stdout.lines if line.startswith("harness ")] == [header]


def test_dev_profile_does_not_depend_on_the_environment(tmp_path):
    code = (
        "import harness.plugin\n"
        "from hypothesis import settings\n"
        "dev = settings.get_profile('harness-dev')\n"
        "print(dev.derandomize, dev.database is not None, dev.max_examples)\n"
    )
    environment = {**os.environ, "CI": "true"}
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env=environment, timeout=300, check=True,
    ).stdout
    assert output.split() == ["False", "True", "20"]


def test_report_header_under_ci(seed_specs, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = run(seed_specs, "--co", "--harness-dtypes=float64")
    header = (f"harness {harness.__version__}: devices=auto dtypes=float64 "
              f"profile=harness-ci derandomized specs=specs")
    assert header in result.stdout.lines


# -------------------------------------------------------------------------------- integrations


@pytest.mark.heavy  # two xdist workers, each importing torch: ~15 s idle, a minute under load
def test_xdist_gives_the_same_outcome(pytester, write):
    write(pytester.path / "specs" / "sq.toml", SQUARE)
    write(pytester.path / "specs" / "wrong.toml", wrong("wrong_xdist", example=True))
    write(pytester.path / "specs" / "bad.toml", "[bad]\nforward = 'x'\n")
    args = ("--harness-devices=cpu", "--harness-checks=analytic,gradcheck", "--harness-seed=3")
    serial = run(pytester, *args)
    parallel = run(pytester, *args, "-n", "2")
    # square: 3 pass; wrong: 2 fail + 1 pass; bad: 1 fail. Warnings are not compared: an
    # in-process run warns that the already imported harness cannot be assertion-rewritten
    # where pip's editable install lists its modules (newer pip and setuptools).
    serial.assert_outcomes(passed=4, failed=3)
    parallel.assert_outcomes(passed=4, failed=3)
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    parallel.stdout.fnmatch_lines(["*2 workers*"])

    def failed(result):
        return sorted(line.split(" - ")[0] for line in result.stdout.lines
                      if line.startswith("FAILED "))

    assert failed(parallel) == failed(serial) == [
        "FAILED specs/bad.toml::bad",
        "FAILED specs/wrong.toml::wrong_xdist::analytic[cpu-float32]",
        "FAILED specs/wrong.toml::wrong_xdist::analytic[cpu-float64]",
    ]


def first_lines(path) -> dict[str, str]:
    """{classname::name: the message attribute of its <failure>} from a JUnit XML report."""
    root = ET.parse(path).getroot()
    return {
        f"{case.get('classname')}::{case.get('name')}": failure.get("message")
        for case in root.iter("testcase")
        for failure in case.iter("failure")
    }


EXPECTED_JUNIT = {
    "specs.bad.toml::bad": "specs/bad.toml:1: spec 'bad': has no inputs — declare each one, e.g. "
           'inputs.x = { shape = ["n"] }',
    "specs.wrong.toml.wrong_junit::analytic[cpu-float64]":
        "Gradient of 'x' is wrong in spec 'wrong_junit' [analytic, cpu, float64]: the analytic "
        "formula is likely wrong",
}


def test_junitxml_message_is_the_first_line(pytester, write):
    write(pytester.path / "specs" / "wrong.toml", wrong("wrong_junit", example=True))
    write(pytester.path / "specs" / "bad.toml", "[bad]\nforward = 'x'\n")
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 "--harness-dtypes=float64", "--junitxml=report.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert first_lines(pytester.path / "report.xml") == EXPECTED_JUNIT


# What pytest-xdist does to every report: serialise it on the worker, rebuild it on the controller.
XDIST_ROUND_TRIP = """
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    hook = item.config.hook
    data = hook.pytest_report_to_serializable(config=item.config, report=report)
    return hook.pytest_report_from_serializable(config=item.config, data=data)
"""


def test_junitxml_message_is_the_first_line_under_xdist(pytester, write):
    write(pytester.path / "conftest.py", XDIST_ROUND_TRIP)
    write(pytester.path / "specs" / "wrong.toml", wrong("wrong_junit", example=True))
    write(pytester.path / "specs" / "bad.toml", "[bad]\nforward = 'x'\n")
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 "--harness-dtypes=float64", "--junitxml=report.xml", "-vv")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert (
        "FAILED specs/wrong.toml::wrong_junit::analytic[cpu-float64] - Gradient of 'x' is "
        "wrong in spec 'wrong_junit' [analytic, cpu, float64]: the analytic formula is likely "
        "wrong"
    ) in result.stdout.lines
    assert first_lines(pytester.path / "report.xml") == EXPECTED_JUNIT


@pytest.mark.parametrize("profile", ["harness-dev", "harness-ci"])
def test_reproduce_command_fails_again_with_the_same_example(pytester, write, profile):
    write(pytester.path / "specs" / "wrong.toml", wrong(f"wrong_reproduce_{profile}"))
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 f"--hypothesis-profile={profile}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    examples = [line for line in result.stdout.lines if line.startswith("Minimal failing example")]
    commands = [line for line in result.stdout.lines if line.startswith("Reproduce: ")]
    assert len(examples) == len(commands) == 2
    for example, command in zip(examples, commands):
        program, node, *options = shlex.split(command.removeprefix("Reproduce: "))
        assert program == "pytest"
        assert f"--hypothesis-profile={profile}" in options
        if profile == "harness-ci":  # derandomized: no seed to give
            assert not any(option.startswith("--harness-seed=") for option in options)
        again = pytester.runpytest("-p", "no:cacheprovider", node, *options)
        assert again.ret == pytest.ExitCode.TESTS_FAILED
        again.assert_outcomes(failed=1)
        assert example in again.stdout.lines
        assert command in again.stdout.lines


def test_spec_name_that_is_no_node_id(pytester, write):
    write(pytester.path / "specs" / "names.toml", """
        ["a::b"]
        forward = "x ** 2"
        backward.x = "grad * x"
        inputs.x = { shape = [] }
        """)
    result = run(pytester, "--harness-devices=cpu", "--harness-checks=analytic",
                 "--harness-dtypes=float64", "-vv")
    result.assert_outcomes(failed=1)
    assert (
        "FAILED specs/names.toml::a::b - specs/names.toml:1: spec 'a::b': name='a::b' cannot be "
        "part of a pytest node id — use letters, digits, '_', '-' and '.', e.g. 'softmax_rows'"
    ) in result.stdout.lines
