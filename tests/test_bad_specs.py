"""Bad specs through pytest: each is one failing item with a located message; the rest still run.

Static errors (found when the file is loaded) become one item per bad spec whose message
reads ``path:line: spec 'name': what is wrong — how to fix it``. Runtime faults (found
while verifying) fail the item with the fault and the example it happened at.
"""

from __future__ import annotations

import textwrap

import pytest
from words import CHECK_NAMES, DOCS

from harness.load.toml_spec import SPEC_KEYS

KEYS = ", ".join(SPEC_KEYS)

GOOD = """
[square]
forward = "x ** 2"
backward.x = "grad * 2 * x"
inputs.x = { shape = ["n"] }
"""
GOOD_ITEMS = 3  # analytic[cpu-float64], analytic[cpu-float32], gradcheck[cpu]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--harness-devices=cpu", "--harness-max-examples=5", "-vv",
        *args,
    )


def glob(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def assert_no_internals(result: pytest.RunResult) -> None:
    """A user's mistake is shown without a traceback into the harness."""
    result.stdout.no_fnmatch_line("*harness/*.py*")
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_folder_with_a_bad_and_a_good_file(pytester, write):
    write(pytester.path / "specs" / "good.toml", GOOD)
    write(pytester.path / "specs" / "bad.toml", """
        [square]
        forward = "x ** 2"
        fowrard = "x"
        inputs.x = { shape = ["n"] }
        """)
    result = run(pytester, "--harness-checks=analytic,gradcheck")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=GOOD_ITEMS, failed=1)
    message = (
        f"specs/bad.toml:3: spec 'square': unknown key 'fowrard' (did you mean 'forward'?) — "
        f"the keys of a spec are {KEYS}"
    )
    result.stdout.fnmatch_lines([
        glob("specs/bad.toml::square") + " FAILED*",
        glob("specs/good.toml::square::analytic[cpu-float64]") + " PASSED*",
        glob("specs/good.toml::square::analytic[cpu-float32]") + " PASSED*",
        glob("specs/good.toml::square::gradcheck[cpu]") + " PASSED*",
    ])
    assert message in result.stdout.lines
    assert f"FAILED specs/bad.toml::square - {message}" in result.stdout.lines
    assert_no_internals(result)


def test_bad_and_good_spec_in_the_same_file(pytester, write):
    write(pytester.path / "specs" / "mixed.toml", textwrap.dedent("""
        [bad]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], low = 2.0, high = 1.0 }
        """) + GOOD)
    result = run(pytester, "--harness-checks=analytic,gradcheck")
    result.assert_outcomes(passed=GOOD_ITEMS, failed=1)
    assert (
        "FAILED specs/mixed.toml::bad - specs/mixed.toml:3: spec 'bad': low=2.0 must be below "
        "high=1.0 — swap them or widen the range"
    ) in result.stdout.lines
    assert_no_internals(result)


def test_toml_syntax_error_and_good_spec_in_the_same_file(pytester, write):
    write(pytester.path / "specs" / "mixed.toml", GOOD + textwrap.dedent("""
        [bad]
        forward = "x ** 2
        inputs.x = { shape = ["n"] }
        """))
    result = run(pytester, "--harness-checks=analytic,gradcheck")
    result.assert_outcomes(passed=GOOD_ITEMS, failed=1)
    assert (
        "FAILED specs/mixed.toml::bad - specs/mixed.toml:7: spec 'bad': TOML syntax error: "
        "Illegal character '\\n' (at line 7, column 18) — fix the syntax; the other specs still "
        "load"
    ) in result.stdout.lines


# One bad spec file per static error category of issue 7: (file, text, node id, message).
STATIC = [
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2
        inputs.x = { shape = ["n"] }
        """, "square",
        "specs/a.toml:2: spec 'square': TOML syntax error: Illegal character '\\n' (at line 2, "
        "column 18) — fix the syntax; the other specs still load", id="toml-syntax"),
    pytest.param("a.toml", b'[square]\nforward = "x \xff\xfe"\n', "a",
                 "specs/a.toml:1: spec 'a': the file is not UTF-8 text (invalid start byte at "
                 "byte 22) — save it as UTF-8", id="not-text"),
    pytest.param("a.toml", "square = 3\n", "square",
                 "specs/a.toml:1: spec 'square': square = 3 is not a table — write [square] and "
                 "the spec's keys under it", id="not-a-table"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        backwrd.x = "grad * 2 * x"
        """, "square",
        f"specs/a.toml:4: spec 'square': unknown key 'backwrd' (did you mean 'backward'?) — the "
        f"keys of a spec are {KEYS}", id="unknown-key"),
    pytest.param("a.toml", """
        [square]
        backward.x = "grad * 2 * x"
        inputs.x = { shape = ["n"] }
        """, "square",
        "specs/a.toml:1: spec 'square': has no forward — add forward = \"<formula of the "
        "inputs>\"", id="missing-forward"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        backward.y = "grad * 2 * x"
        inputs.x = { shape = ["n"] }
        """, "square",
        "specs/a.toml:3: spec 'square': backward names 'y', "
        "which is not an input — the inputs are x", id="backward-missing-input"),
    pytest.param("a.toml", """
        [square]
        forward = "x * y"
        inputs.x = { shape = ["n"] }
        inputs.y = { shape = ["n"] }
        [[square.examples]]
        x = [1.0]
        z = [2.0]
        """, "square",
        "specs/a.toml:5: spec 'square': examples[0] names 'z', which is not an input or a dim "
        "— the inputs are x, y", id="examples-missing-input"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n", -2] }
        """, "square",
        "specs/a.toml:3: spec 'square': size -2 in shape=['n', -2] is not a non-negative "
        "integer or a dim name — write e.g. 3 or 'n'", id="bad-shape"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = "n" }
        """, "square",
        "specs/a.toml:3: spec 'square': shape='n' is not a sequence of sizes — write a list such "
        "as shape=[3] or shape=['n', 2] (shape=[] is a scalar)", id="shape-not-a-list"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        dims = { n = [8, 1] }
        """, "square",
        "specs/a.toml:4: spec 'square': dims.n=[8, 1] is not a range 0 <= min <= max — write "
        "e.g. n = [1, 8]", id="reversed-dims"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        dims = { n = [] }
        """, "square",
        "specs/a.toml:4: spec 'square': dims.n=[] is not a [min, max] pair of integers — write "
        "e.g. n = [1, 8]", id="empty-dims"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], low = 1.0, high = -1.0 }
        """, "square",
        "specs/a.toml:3: spec 'square': low=1.0 must be below high=-1.0 — swap them or widen "
        "the range", id="reversed-low-high"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], low = 0.5, high = 0.5 }
        """, "square",
        "specs/a.toml:3: spec 'square': low=0.5 must be below high=0.5 — swap them or widen "
        "the range", id="empty-low-high"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], high = inf }
        """, "square",
        "specs/a.toml:3: spec 'square': high=inf is not a finite number — give the bounds of "
        "the input's domain as numbers, e.g. low=-1.0, high=1.0", id="non-finite-bound"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"], kinks = ["zero"] }
        """, "square",
        "specs/a.toml:3: spec 'square': kink 'zero' in kinks=['zero'] is not a finite number — "
        "list the points where the function is not differentiable, e.g. [0.0]",
        id="non-number-kinks"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        checks = ["finite_diference"]
        """, "square",
        f"specs/a.toml:4: spec 'square': unknown check 'finite_diference' (did you mean "
        f"'finite_difference'?) — the checks are {CHECK_NAMES}", id="unknown-check"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n"] }
        dtypes = ["float32", "half"]
        """, "square",
        "specs/a.toml:4: spec 'square': unknown dtype 'half' — the dtypes are float64, float32, "
        "float16, bfloat16, complex128, complex64", id="unknown-dtype"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** "
        inputs.x = { shape = ["n"] }
        """, "square",
        "specs/a.toml:2: spec 'square': forward = \"x ** \": invalid syntax at the end — write "
        "one Python expression", id="formula-syntax"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        backward.x = "grad * 2 * y"
        inputs.x = { shape = ["n"] }
        """, "square",
        "specs/a.toml:3: spec 'square': backward.x = \"grad * 2 * y\": unknown name 'y' — the "
        "formula can use x, n, grad, result", id="unknown-name"),
    pytest.param("a.toml", """
        [square]
        forward = "sum(expp(x))"
        inputs.x = { shape = ["n"] }
        """, "square",
        f"specs/a.toml:2: spec 'square': forward = \"sum(expp(x))\": unknown function 'expp' — "
        f"did you mean 'exp'? {DOCS}", id="unknown-function"),
    pytest.param("a.toml", f"""
        [square]
        forward = "{'sin(' * 70}x{')' * 70}"
        inputs.x = {{ shape = ["n"] }}
        """, "square",
        "specs/a.toml:2: spec 'square': forward = \"sin(sin(sin(sin(sin(sin(sin(sin(sin(sin("
        "sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(sin(s...\": the "
        "formula nests more than 64 levels deep — simplify it or write a Python spec "
        "(specs/*.py)", id="too-deep"),
    pytest.param("a.toml", """
        [square]
        forward = "x ** 2"
        inputs.x = { shape = ["n", "m", 10] }
        dims = { n = [1, 1000], m = [1, 1000] }
        """, "square",
        "specs/a.toml:3: spec 'square': input 'x' can reach 10,000,000 elements at the largest "
        "dims (n=1000, m=1000), over the budget of 1,000,000 per input — lower the dims' maxima",
        id="memory-budget"),
    pytest.param("a.toml", """
        [two]
        forward = "(x * 2, x + 1)"
        backward.x = "grad[0] * 2 + grad[2]"
        inputs.x = { shape = ["n"] }
        """, "two",
        "specs/a.toml:3: spec 'two': backward.x = \"grad[0] * 2 + grad[2]\" reads grad[2], but "
        "forward returns 2 outputs — index them grad[0] to grad[1]", id="output-index"),
    pytest.param("a.toml", """
        [two]
        forward = "(x * 2, x + 1)"
        inputs.x = { shape = ["n"] }
        nondifferentiable_outputs = [2]
        """, "two",
        "specs/a.toml:4: spec 'two': nondifferentiable_outputs names output 2, but the forward "
        "returns 2 outputs (0 to 1) — name an output by its index in the forward's tuple",
        id="nondifferentiable-output-index"),
    pytest.param("a.toml", """
        [two]
        forward = "(x * 2, x + 1)"
        inputs.x = { shape = ["n"] }
        nondifferentiable_outputs = [1, 1]
        """, "two",
        "specs/a.toml:4: spec 'two': nondifferentiable_outputs=[1, 1] must be a list of output "
        "indices, each once (0 is the first output) — e.g. nondifferentiable_outputs=[1] for a "
        "forward returning (out, lse) whose lse is marked non-differentiable",
        id="nondifferentiable-output-twice"),
    pytest.param("a.toml", """
        [lookup]
        forward = "w[i]"
        inputs.w = { shape = ["V"] }
        inputs.i = { shape = ["n"], dtype = "int64", high = "V", requires_grad = true }
        """, "lookup",
        "specs/a.toml:4: spec 'lookup': requires_grad=True on an int64 input — an integer or "
        "bool input has no gradient; leave requires_grad out (it is false for these)",
        id="integer-requires-grad"),
    pytest.param("a.toml", """
        [lookup]
        forward = "w[i]"
        inputs.w = { shape = ["V"] }
        inputs.i = { shape = ["n"], dtype = "int64", high = "W" }
        """, "lookup",
        "specs/a.toml:4: spec 'lookup': inputs.i: high='W' names a dim that no input's shape "
        "uses and dims does not declare — declare it, e.g. dims = {W = [1, 8]}",
        id="integer-high-unknown-dim"),
    pytest.param("a.toml", """
        [lookup]
        forward = "w[i]"
        inputs.w = { shape = ["V"] }
        inputs.i = { shape = ["n"], dtype = "int64", low = 3, high = 3 }
        """, "lookup",
        "specs/a.toml:4: spec 'lookup': low=3 must be below high=3 — swap them or widen the "
        "range (high is exclusive for an integer input)", id="integer-empty-range"),
    pytest.param("a.toml", """
        [soft]
        forward = "softmax(x, dim)"
        inputs.x = { shape = ["n"] }
        params = { dim = [] }
        """, "soft",
        "specs/a.toml:4: spec 'soft': params.dim=[] lists no value to draw — give at least one",
        id="params-empty"),
    pytest.param("a.toml", """
        [magnitude]
        forward = "abs(x)"
        inputs.x = { shape = ["n"], kinks = [0.0] }
        dtypes = ["complex128"]
        """, "magnitude",
        "specs/a.toml:4: spec 'magnitude': inputs.x declares kinks=[0.0] and the spec runs in "
        "complex128 — kinks are points on the real line; drop them or the complex dtypes",
        id="complex-kinks"),
    pytest.param("mod.py", """
        import torch

        raise ImportError("no module named 'triton'")
        """, "mod",
        "specs/mod.py:3: spec 'mod': the file failed to import: ImportError: no module named "
        "'triton' — fix the module; the other spec files still load", id="python-import"),
    pytest.param("mod.py", """
        from harness import Input, Spec

        wrong = Spec(forward=lambda x: x, inputs={"x": Input(["n"])}, dims={"n": [4, 2]})
        """, "wrong",
        "specs/mod.py:3: spec 'wrong': dims.n=[4, 2] is not a range 0 <= min <= max — write e.g. "
        "n = [2, 4]", id="python-invalid-spec"),
]


@pytest.mark.parametrize(("name", "text", "node", "message"), STATIC)
def test_static_error_is_one_failing_item(pytester, write, name, text, node, message):
    write(pytester.path / "specs" / name, text)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    assert message in result.stdout.lines
    assert f"FAILED specs/{name}::{node} - {message}" in result.stdout.lines
    assert_no_internals(result)


def test_python_module_that_exits_is_one_failing_item(pytester, write):
    write(pytester.path / "specs" / "good.toml", GOOD)
    write(pytester.path / "specs" / "mod.py", """
        import sys

        sys.exit("no GPU here")
        """)
    result = run(pytester, "--harness-checks=analytic,gradcheck")
    result.assert_outcomes(passed=GOOD_ITEMS, failed=1)
    assert (
        "FAILED specs/mod.py::mod - specs/mod.py:3: spec 'mod': the file failed to import: "
        "SystemExit: no GPU here — fix the module; the other spec files still load"
    ) in result.stdout.lines


# Runtime faults: (file, text, --harness-checks, node, first line, example line).
FAULT = "The spec's code failed in spec"
PY_HEAD = "import torch\nfrom harness import Input, Spec\n"
RUNTIME = [
    pytest.param("faults.py", PY_HEAD + """
def explode(x):
    raise ValueError("forward exploded")


forward_raises = Spec(forward=explode, inputs={"x": Input(["n"])}, examples=[{"x": [1.0, 2.0]}])
""", "finite_difference", "forward_raises::finite_difference[cpu-float64]",
        f"{FAULT} 'forward_raises' [finite_difference, cpu, float64]: forward raised ValueError: "
        "forward exploded", "n=2; x=[1.0, 2.0]", 8, id="forward-raises"),
    pytest.param("faults.toml", """
        [log_nan]
        forward = "log(x)"
        inputs.x = { shape = ["n"], low = -1.0, high = 1.0 }
        [[log_nan.examples]]
        x = [0.5, -0.5]
        """, "finite_difference", "log_nan::finite_difference[cpu-float64]",
        f"{FAULT} 'log_nan' [finite_difference, cpu, float64]: forward returned a non-finite "
        "value (nan or inf) inside the declared domain — narrow the inputs' low/high or declare "
        "kinks", "n=2; x=[0.5, -0.5]", 1, id="forward-nan"),
    pytest.param("faults.toml", """
        # reciprocal
        [reciprocal]
        forward = "1 / x"
        inputs.x = { shape = [] }
        [[reciprocal.examples]]
        x = 0.0
        """, "finite_difference", "reciprocal::finite_difference[cpu-float64]",
        f"{FAULT} 'reciprocal' [finite_difference, cpu, float64]: forward returned a "
        "non-finite value (nan or inf) inside the declared domain — narrow the inputs' low/high "
        "or declare kinks", "x=0.0", 2, id="forward-inf"),
    pytest.param("faults.py", PY_HEAD + """
def broken_backward(grad, x):
    return grad / 0 if False else {}["x"]


backward_raises = Spec(
    forward=lambda x: x * 2,
    inputs={"x": Input(["n"])},
    backward={"x": broken_backward},
    examples=[{"x": [1.0]}],
)
""", "analytic", "backward_raises::analytic[cpu-float64]",
        f"{FAULT} 'backward_raises' [analytic, cpu, float64]: backward.x raised KeyError: 'x'",
        "n=1; x=[1.0]", 8, id="backward-raises"),
    pytest.param("faults.toml", """
        [sum_squares]
        forward = "sum(x ** 2)"
        backward.x = "grad * 2"
        inputs.x = { shape = ["n"] }
        [[sum_squares.examples]]
        x = [1.0, 2.0]
        """, "analytic", "sum_squares::analytic[cpu-float64]",
        f"{FAULT} 'sum_squares' [analytic, cpu, float64]: backward.x returned shape () for an "
        "input of shape (2,) — a gradient has its input's shape (sum over broadcast dimensions, "
        "e.g. sum(..., dim=0, keepdim=True))", "n=2; x=[1.0, 2.0]", 1, id="backward-shape"),
    pytest.param("faults.py", PY_HEAD + """
class DoubleInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


inplace = Spec(
    forward=lambda x: DoubleInPlace.apply(x),
    inputs={"x": Input(["n"])},
    examples=[{"x": [1.0, -3.0]}],
)
""", "finite_difference", "inplace::finite_difference[cpu-float64]",
        f"{FAULT} 'inplace' [finite_difference, cpu, float64]: forward modified input 'x' in "
        "place — clone it first (x = x.clone()) or use an out-of-place operation",
        "n=2; x=[1.0, -3.0]", 15, id="function-in-place"),
]


@pytest.mark.parametrize(("name", "text", "check", "node", "first", "example", "line"), RUNTIME)
def test_runtime_fault_fails_the_item_with_the_example(
    pytester, write, name, text, check, node, first, example, line
):
    write(pytester.path / "specs" / name, text)
    result = run(pytester, f"--harness-checks={check}", "--harness-dtypes=float64",
                 "--harness-seed=5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        glob(first),
        "",
        glob(f"Failing example (examples[0] of the spec): {example}"),
        glob(f"Spec: specs/{name}:{line}"),
        glob(f'Reproduce: pytest "specs/{name}::{node}" --harness-seed=5 '
             "--harness-max-examples=5 --hypothesis-profile=harness-dev"),
    ], consecutive=True)
    assert f"FAILED specs/{name}::{node} - {first}" in result.stdout.lines
    assert_no_internals(result)


def test_runtime_fault_in_a_drawn_example_names_the_shrunk_example(pytester, write):
    write(pytester.path / "specs" / "faults.py", PY_HEAD + """
class DoubleInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


inplace = Spec(forward=lambda x: DoubleInPlace.apply(x), inputs={"x": Input(["n"])})
""")
    result = run(pytester, "--harness-checks=finite_difference", "--harness-dtypes=float64")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        glob(f"{FAULT} 'inplace' [finite_difference, cpu, float64]: forward modified input 'x' "
             "in place — clone it first (x = x.clone()) or use an out-of-place operation"),
        "",
        glob("Minimal failing example (after shrinking): n=1; x=[") + "*" + glob("]"),
        "Spec: specs/faults.py:15",
    ], consecutive=True)
