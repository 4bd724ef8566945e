"""Input and Spec: every rule checked at construction, and the exact words of each SpecError."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from words import CHECK_NAMES, DTYPE_NAMES

from harness import Input, Spec, SpecError
from harness.spec.options import DEFAULT_DIM_RANGE

WHERE = "specs/t.py:7: spec 'sq': "


def identity(x):
    return x


def spec_error(**options) -> str:
    """The message of the SpecError that Spec(**options) raises (with a known location)."""
    arguments = {
        "forward": identity, "inputs": {"x": Input(["n"])},
        "name": "sq", "path": "specs/t.py", "line": 7, **options,
    }
    with pytest.raises(SpecError) as info:
        Spec(**arguments)
    return str(info.value)


def input_error(*args, **options) -> str:
    with pytest.raises(SpecError) as info:
        Input(*args, **options)
    return str(info.value)


# --------------------------------------------------------------------------------------- Input


def test_input_defaults_and_normalisation():
    value = Input(["n", 3], low=0, high=5, kinks=[0, 1.5])
    assert value == Input(("n", 3), low=0.0, high=5.0, kinks=(0.0, 1.5))
    assert value.shape == ("n", 3)
    assert isinstance(value.low, float) and isinstance(value.high, float)
    assert value.kinks == (0.0, 1.5)
    assert value.dim_names == ("n",)
    assert value.resolve({"n": 4}) == (4, 3)
    assert repr(Input()) == (
        "Input(shape=(), low=-10.0, high=10.0, requires_grad=True, kinks=(), unique=False, "
        "dtype=None, count=None)"
    )


SHAPE_FIX = "write a list such as shape=[3] or shape=['n', 2] (shape=[] is a scalar)"
SIZE_FIX = "is not a non-negative integer or a dim name — write e.g. 3 or 'n'"
NAME_FIX = "is not a valid name — use letters, digits and underscores, e.g. 'n' or 'batch'"
BOUNDS_FIX = "give the bounds of the input's domain as numbers, e.g. low=-1.0, high=1.0"
KINK_FIX = "list the points where the function is not differentiable, e.g. [0.0]"


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        pytest.param(("n",), {}, f"shape='n' is not a sequence of sizes — {SHAPE_FIX}",
                     id="shape-string"),
        pytest.param((3,), {}, f"shape=3 is not a sequence of sizes — {SHAPE_FIX}",
                     id="shape-int"),
        pytest.param(([-1],), {}, f"size -1 in shape=[-1] {SIZE_FIX}", id="negative-size"),
        pytest.param(([2.0],), {}, f"size 2.0 in shape=[2.0] {SIZE_FIX}", id="float-size"),
        pytest.param(([True],), {}, f"size True in shape=[True] {SIZE_FIX}", id="bool-size"),
        pytest.param((["n", None],), {}, f"size None in shape=['n', None] {SIZE_FIX}",
                     id="none-size"),
        pytest.param((["1n"],), {}, f"dim name '1n' in shape=['1n'] {NAME_FIX}",
                     id="dim-name-digit"),
        pytest.param((["_n"],), {}, f"dim name '_n' in shape=['_n'] {NAME_FIX}",
                     id="dim-name-underscore"),
        pytest.param(((),), {"low": math.nan},
                     f"low=nan is not a finite number — {BOUNDS_FIX}", id="low-nan"),
        pytest.param(((),), {"high": math.inf},
                     f"high=inf is not a finite number — {BOUNDS_FIX}", id="high-inf"),
        pytest.param(((),), {"low": -math.inf},
                     f"low=-inf is not a finite number — {BOUNDS_FIX}", id="low-minus-inf"),
        pytest.param(((),), {"low": "0"},
                     f"low='0' is not a finite number — {BOUNDS_FIX}", id="low-string"),
        pytest.param(((),), {"high": True},
                     f"high=True is not a finite number — {BOUNDS_FIX}", id="high-bool"),
        pytest.param(((),), {"low": 2.0, "high": 1.0},
                     "low=2.0 must be below high=1.0 — swap them or widen the range",
                     id="low-above-high"),
        pytest.param(((),), {"low": 1, "high": 1},
                     "low=1.0 must be below high=1.0 — swap them or widen the range",
                     id="empty-range"),
        pytest.param(((),), {"kinks": 0.0},
                     "kinks=0.0 is not a list of numbers — write e.g. kinks=[0.0]",
                     id="kinks-number"),
        pytest.param(((),), {"kinks": "0"},
                     "kinks='0' is not a list of numbers — write e.g. kinks=[0.0]",
                     id="kinks-string"),
        pytest.param(((),), {"kinks": ["zero"]},
                     f"kink 'zero' in kinks=['zero'] is not a finite number — {KINK_FIX}",
                     id="kink-string"),
        pytest.param(((),), {"kinks": [0.0, math.nan]},
                     f"kink nan in kinks=[0.0, nan] is not a finite number — {KINK_FIX}",
                     id="kink-nan"),
        pytest.param(((),), {"kinks": [True]},
                     f"kink True in kinks=[True] is not a finite number — {KINK_FIX}",
                     id="kink-bool"),
        pytest.param(((),), {"requires_grad": 1}, "requires_grad=1 must be true or false",
                     id="requires-grad-int"),
        pytest.param(((),), {"unique": "yes"}, "unique='yes' must be true or false",
                     id="unique-string"),
    ],
)
def test_input_rejects(args, options, message):
    assert input_error(*args, **options) == message


# ---------------------------------------------------------------------------------------- Spec


def test_spec_defaults():
    spec = Spec(
        forward=lambda X, W: X @ W,
        inputs={"X": Input(["N", "D"], requires_grad=False), "W": Input(["D", 1])},
        dims={"N": (1, 8)},
        name="linear",
    )
    assert spec.differentiable == ("W",)
    assert spec.dims == {"N": (1, 8), "D": DEFAULT_DIM_RANGE}
    assert list(spec.dims) == ["N", "D"]  # in the order the shapes use them
    assert spec.dtypes == ("float64", "float32")
    assert spec.checks is None
    assert spec.backward == {}
    assert spec.jvp is None and spec.reference is None
    assert spec.tolerances == {} and spec.examples == () and spec.benchmark == {}
    assert spec.twice_differentiable is False and spec.doc == "" and spec.nondet_tol == 0.0


def test_spec_location_defaults_to_the_caller():
    line = inspect.currentframe().f_lineno + 1
    spec = Spec(forward=identity, inputs={"x": Input()}, name="here")
    assert (spec.path, spec.line) == (__file__, line)
    assert spec.location == f"{__file__}:{line}"
    assert repr(spec) == f"<Spec 'here' at {__file__}:{line}>"


def test_spec_error_location_defaults_to_the_caller():
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(SpecError) as info:
        Spec(forward=identity, inputs={"x": Input()}, checks=["analytc"], name="here")
    error = info.value
    assert (error.path, error.line, error.spec) == (__file__, line, "here")
    assert str(error) == (
        f"{__file__}:{line}: spec 'here': unknown check 'analytc' (did you mean 'analytic'?) — "
        f"the checks are {CHECK_NAMES}"
    )


def test_spec_stores_validated_options():
    spec = Spec(
        forward=lambda x, w: (x * w).sum(),
        inputs={"x": Input(["n"], low=-2, high=2), "w": Input(["n"], requires_grad=False)},
        backward={"x": lambda grad, w: grad * w},
        jvp=lambda w, x_t: (w * x_t).sum(),
        reference=lambda x, w: (w * x).sum(),
        dims={"n": [1, 5]},
        checks=["analytic", "taylor"],
        dtypes=["float64"],
        tolerances={"float64": {"rtol": 1e-6, "atol": 0}},
        twice_differentiable=True,
        doc="weighted sum",
        benchmark={"n": 1024},
        nondet_tol=1e-12,
        name="weighted",
    )
    assert spec.dims == {"n": (1, 5)}
    assert spec.checks == ("analytic", "taylor")
    assert spec.dtypes == ("float64",)
    assert spec.tolerances == {"float64": {"rtol": 1e-6, "atol": 0.0}}
    assert spec.benchmark == {"n": 1024}
    assert spec.nondet_tol == 1e-12 and spec.twice_differentiable and spec.doc == "weighted sum"
    assert spec.backward["x"].names == ("grad", "w")
    assert spec.jvp.names == ("w", "x_t")
    assert spec.reference.names == ("x", "w")


INPUTS_FIX = "must be a non-empty mapping of names to Input — e.g. inputs={'x': Input(['n'])}"
RESERVED = (
    "is reserved (grad, result, torch and names ending in '_t' mean something in formulas) — "
    "rename the input"
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"inputs": {}}, f"inputs={{}} {INPUTS_FIX}", id="no-inputs"),
        pytest.param({"inputs": None}, f"inputs=None {INPUTS_FIX}", id="inputs-none"),
        pytest.param({"inputs": {"1x": Input()}},
                     "input name '1x' is not a valid name — use letters, digits and underscores "
                     "(dots separate a module's parameter path)", id="input-name"),
        pytest.param({"inputs": {"_x": Input()}},
                     "input name '_x' is not a valid name — use letters, digits and underscores "
                     "(dots separate a module's parameter path)", id="input-name-private"),
        pytest.param({"inputs": {"grad": Input()}}, f"input name 'grad' {RESERVED}",
                     id="input-grad"),
        pytest.param({"inputs": {"result": Input()}}, f"input name 'result' {RESERVED}",
                     id="input-result"),
        pytest.param({"inputs": {"torch": Input()}}, f"input name 'torch' {RESERVED}",
                     id="input-torch"),
        pytest.param({"inputs": {"x_t": Input()}}, f"input name 'x_t' {RESERVED}",
                     id="input-tangent"),
        pytest.param({"inputs": {"x": (3,)}},
                     "inputs['x']=(3,) is not an Input — write Input(shape, ...)",
                     id="not-an-input"),
        pytest.param({"inputs": {"x": Input(requires_grad=False)}},
                     "no input has requires_grad=true, so there is no gradient to check — let at "
                     "least one input require a gradient", id="nothing-differentiable"),
    ],
)
def test_spec_rejects_inputs(options, message):
    assert spec_error(**options) == WHERE + message


DIMS_FIX = "is not a range 0 <= min <= max"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"dims": {"m": (1, 2)}},
                     "dim 'm' is declared in dims but no input's shape uses it — use it in a "
                     "shape or remove it", id="unused-dim"),
        pytest.param({"inputs": {"x": Input(["batch"])}, "dims": {"bath": (1, 2)}},
                     "dim 'bath' is declared in dims but no input's shape uses it (did you mean "
                     "'batch'?) — use it in a shape or remove it", id="unused-dim-suggestion"),
        pytest.param({"dims": [("n", 1, 2)]},
                     "dims=[('n', 1, 2)] must map dim names to [min, max] size ranges",
                     id="dims-not-a-mapping"),
        pytest.param({"dims": {"n": (5, 2)}},
                     f"dims.n=[5, 2] {DIMS_FIX} — write e.g. n = [2, 5]", id="reversed"),
        pytest.param({"dims": {"n": (-1, 2)}},
                     f"dims.n=[-1, 2] {DIMS_FIX} — write e.g. n = [0, 2]", id="negative"),
        pytest.param({"dims": {"n": ()}},
                     "dims.n=() is not a [min, max] pair of integers — write e.g. n = [1, 8]",
                     id="empty"),
        pytest.param({"dims": {"n": (1, 2, 3)}},
                     "dims.n=(1, 2, 3) is not a [min, max] pair of integers — write e.g. "
                     "n = [1, 8]", id="three-numbers"),
        pytest.param({"dims": {"n": (1.0, 2)}},
                     "dims.n=(1.0, 2) is not a [min, max] pair of integers — write e.g. "
                     "n = [1, 8]", id="float-bound"),
        pytest.param({"dims": {"n": "12"}},
                     "dims.n='12' is not a [min, max] pair of integers — write e.g. n = [1, 8]",
                     id="string"),
        pytest.param({"dims": {"n": (True, 2)}},
                     "dims.n=(True, 2) is not a [min, max] pair of integers — write e.g. "
                     "n = [1, 8]", id="bool-bound"),
        pytest.param({"inputs": {"x": Input(["n"]), "n": Input()}, "dims": {"n": (1, 2)}},
                     "dim 'n' has the name of an input — rename one of them",
                     id="dim-named-like-input"),
    ],
)
def test_spec_rejects_dims(options, message):
    assert spec_error(**options) == WHERE + message


def test_undeclared_dim_named_like_an_input_is_rejected():
    assert spec_error(inputs={"x": Input(["x"])}) == (
        WHERE + "dim 'x' has the name of an input — rename one of them"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"backward": {"y": lambda grad: grad}},
                     "backward names 'y', which is not an input — the inputs are x",
                     id="not-an-input"),
        pytest.param({"backward": {"xx": lambda grad: grad}},
                     "backward names 'xx', which is not an input (did you mean 'x'?) — the "
                     "inputs are x", id="not-an-input-suggestion"),
        pytest.param({"forward": lambda x, y: x * y,
                      "inputs": {"x": Input(), "y": Input(requires_grad=False)},
                      "backward": {"y": lambda grad, x: grad * x}},
                     "backward names 'y', an input with requires_grad=false — remove the formula "
                     "or let the input require a gradient", id="not-differentiable"),
        pytest.param({"backward": identity},
                     f"backward={identity!r} must map input names to callables",
                     id="not-a-mapping"),
        pytest.param({"backward": {"x": 3}},
                     "backward.x=3 is not callable — give a function or a formula",
                     id="not-callable"),
    ],
)
def test_spec_rejects_backward(options, message):
    assert spec_error(**options) == WHERE + message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"checks": ["analytc"]},
                     f"unknown check 'analytc' (did you mean 'analytic'?) — the checks are "
                     f"{CHECK_NAMES}", id="check-suggestion"),
        pytest.param({"checks": ["gradchek"]},
                     f"unknown check 'gradchek' (did you mean 'gradcheck'?) — the checks are "
                     f"{CHECK_NAMES}", id="check-suggestion-2"),
        pytest.param({"checks": ["zzz"]},
                     f"unknown check 'zzz' — the checks are {CHECK_NAMES}", id="check-no-match"),
        pytest.param({"checks": "analytic"},
                     "checks='analytic' must be a list of check names, e.g. ['analytic']",
                     id="checks-string"),
        pytest.param({"dtypes": ["float23"]},
                     f"unknown dtype 'float23' (did you mean 'float32'?) — the dtypes are "
                     f"{DTYPE_NAMES}", id="dtype-suggestion"),
        pytest.param({"dtypes": ["bfloat"]},
                     f"unknown dtype 'bfloat' (did you mean 'bfloat16'?) — the dtypes are "
                     f"{DTYPE_NAMES}", id="dtype-suggestion-2"),
        pytest.param({"dtypes": ["int64"]},
                     f"unknown dtype 'int64' — the dtypes are {DTYPE_NAMES}",
                     id="dtype-no-match"),
        pytest.param({"dtypes": []}, "dtypes=[] must be a non-empty list, e.g. ['float64']",
                     id="dtypes-empty"),
        pytest.param({"dtypes": "float32"},
                     "dtypes='float32' must be a non-empty list, e.g. ['float64']",
                     id="dtypes-string"),
    ],
)
def test_spec_rejects_checks_and_dtypes(options, message):
    assert spec_error(**options) == WHERE + message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"tolerances": 1e-3},
                     "tolerances=0.001 must map dtype names to {rtol, atol}, e.g. "
                     "{float32 = {rtol = 1e-4, atol = 1e-5}}", id="not-a-mapping"),
        pytest.param({"tolerances": {"float23": {"rtol": 1e-3}}},
                     f"tolerances names dtype 'float23' (did you mean 'float32'?) — the dtypes "
                     f"are {DTYPE_NAMES}", id="unknown-dtype"),
        pytest.param({"tolerances": {"float32": {"rtl": 1e-3}}},
                     "tolerances.float32={'rtl': 0.001} must hold only rtol and atol, e.g. "
                     "{rtol = 1e-4, atol = 1e-5}", id="unknown-key"),
        pytest.param({"tolerances": {"float32": 1e-3}},
                     "tolerances.float32=0.001 must hold only rtol and atol, e.g. "
                     "{rtol = 1e-4, atol = 1e-5}", id="not-a-pair"),
        pytest.param({"tolerances": {"float32": {"rtol": -1}}},
                     "tolerances.float32.rtol=-1 must be a number >= 0", id="negative"),
        pytest.param({"tolerances": {"float32": {"atol": math.inf}}},
                     "tolerances.float32.atol=inf must be a number >= 0", id="infinite"),
        pytest.param({"tolerances": {"float32": {"atol": "1e-3"}}},
                     "tolerances.float32.atol='1e-3' must be a number >= 0", id="string"),
    ],
)
def test_spec_rejects_tolerances(options, message):
    assert spec_error(**options) == WHERE + message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"twice_differentiable": "yes"},
                     "twice_differentiable='yes' must be true or false", id="twice"),
        pytest.param({"doc": 3}, "doc=3 must be a string", id="doc"),
        pytest.param({"benchmark": 5},
                     "benchmark=5 must map dim names to sizes, e.g. {n = 4096}",
                     id="benchmark-not-a-mapping"),
        pytest.param({"benchmark": {"m": 5}},
                     "benchmark names dim 'm', which no input uses — the dims are n",
                     id="benchmark-unknown-dim"),
        pytest.param({"benchmark": {"n": 0}}, "benchmark.n=0 must be a positive integer",
                     id="benchmark-size"),
        pytest.param({"nondet_tol": -1}, "nondet_tol=-1 must be a non-negative number",
                     id="nondet-tol"),
        pytest.param({"forward": "x"},
                     "forward='x' is not callable — give a function or a formula",
                     id="forward-not-callable"),
        pytest.param({"inputs": {"x": Input(["n", "m"])},
                      "dims": {"n": (1, 2000), "m": (1, 1000)}},
                     "input 'x' can reach 2,000,000 elements at the largest dims (n=2000, "
                     "m=1000), over the budget of 1,000,000 per input — lower the dims' maxima",
                     id="memory-budget"),
    ],
)
def test_spec_rejects_options(options, message):
    assert spec_error(**options) == WHERE + message


def test_memory_budget_is_inclusive():
    Spec(forward=identity, inputs={"x": Input([1000, "n"])}, dims={"n": (1, 1000)})


def test_memory_budget_message_for_a_fixed_shape():
    assert spec_error(inputs={"x": Input([1001, 1000])}) == WHERE + (
        "input 'x' can reach 1,001,000 elements (shape [1001, 1000]), over the budget of "
        "1,000,000 per input — use a smaller shape"
    )


# ------------------------------------------------------------------- callables' keyword names


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"forward": lambda x, y: x},
                     "forward takes parameter 'y', which is none of x, n — rename it or give it "
                     "a default", id="forward-unknown"),
        pytest.param({"forward": lambda xx: xx, "inputs": {"x": Input(), "xy": Input()}},
                     "forward takes parameter 'xx', which is none of x, xy (did you mean 'x'?) — "
                     "rename it or give it a default", id="forward-suggestion"),
        pytest.param({"forward": lambda x, grad: x},
                     "forward takes parameter 'grad', which is none of x, n — rename it or give "
                     "it a default", id="forward-grad"),
        pytest.param({"backward": {"x": lambda gard: gard}},
                     "backward.x takes parameter 'gard', which is none of x, n, grad, result "
                     "(did you mean 'grad'?) — rename it or give it a default",
                     id="backward-typo"),
        pytest.param({"jvp": lambda x_tt: x_tt},
                     "jvp takes parameter 'x_tt', which is none of x, n, x_t, result (did you "
                     "mean 'x_t'?) — rename it or give it a default", id="jvp-typo"),
        pytest.param({"reference": lambda grad: grad},
                     "reference takes parameter 'grad', which is none of x, n — rename it or "
                     "give it a default", id="reference-grad"),
        pytest.param({"forward": lambda x, /: x},
                     "forward takes x positionally — the harness passes x, n by keyword; make "
                     "it a keyword parameter", id="positional-only"),
        pytest.param({"forward": lambda *args: args[0]},
                     "forward takes *args positionally — the harness passes x, n by keyword; "
                     "make it a keyword parameter", id="var-positional"),
    ],
)
def test_callables_parameters_are_validated(options, message):
    assert spec_error(**options) == WHERE + message


def test_callables_receive_what_they_name():
    spec = Spec(
        forward=lambda x, n, scale=2.0: x * scale,
        inputs={"x": Input(["n"])},
        backward={"x": lambda **values: values["grad"] * 2},
        reference=lambda **values: values["x"] * 2,
    )
    assert spec.forward.names == ("x", "n")
    # a catch-all receives every variable but the dims
    assert spec.backward["x"].names == ("x", "grad", "result")
    assert spec.reference.names == ("x",)
    x = torch.ones(3)
    assert torch.equal(spec.forward({"x": x, "n": 3}), 2 * x)


# -------------------------------------------------------------------------------------- examples

XW = {"x": Input(["n", "d"], requires_grad=False), "W": Input(["d", 1])}


def matmul(x, W):
    return x @ W


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        pytest.param({"x": 1.0}, "examples={'x': 1.0} must be a list of tables, one per example, "
                     "each giving a value for every input", id="not-a-list"),
        pytest.param("x", "examples='x' must be a list of tables, one per example, each giving a "
                     "value for every input", id="string"),
        pytest.param([1.0], "examples[0]=1.0 must be a table of input values", id="not-a-table"),
        pytest.param([{"x": [[1.0]]}], "examples[0] gives no value for 'W' — add it",
                     id="missing-input"),
        pytest.param([{}], "examples[0] gives no value for 'x', 'W' — add it",
                     id="missing-inputs"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]]}, {"x": [[1.0]], "W": [[1.0]], "WW": 1.0}],
                     "examples[1] names 'WW', which is not an input or a dim "
                     "(did you mean 'W'?) — the inputs are x, W", id="unknown-input"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "expect": {}}],
                     "examples[0] names 'expect', which is not an input or a dim (did you mean "
                     "'expected'?) — the inputs are x, W", id="misspelt-option"),
        pytest.param([{"x": [1.0], "W": [[1.0]]}],
                     "examples[0].x has shape (1,) but the input is declared with shape "
                     "['n', 'd'] — give a value of that shape", id="wrong-rank"),
        pytest.param([{"x": [[1.0]], "W": [[1.0, 2.0]]}],
                     "examples[0].W has shape (1, 2) but the input is declared with shape "
                     "['d', 1] — give a value of that shape", id="wrong-fixed-size"),
        pytest.param([{"x": [[1.0, 2.0]], "W": [[1.0]]}],
                     "examples[0].W gives dim 'd' size 1, but an earlier input gave it size 2 — "
                     "make the shapes agree", id="inconsistent-dims"),
        pytest.param([{"x": [[1.0, 2.0], [1.0]], "W": [[1.0]]}],
                     "examples[0].x=[[1.0, 2.0], [1.0]] is not a number or a rectangular nested "
                     "list of numbers (expected sequence of length 2 at dim 1 (got 1))",
                     id="ragged"),
        pytest.param([{"x": [[math.inf]], "W": [[1.0]]}],
                     "examples[0].x=[[inf]] holds a non-finite value — give finite numbers",
                     id="non-finite"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "expected": {"V": [[1.0]]}}],
                     "examples[0].expected names 'V', which is not an input with a gradient — "
                     "those are W", id="expected-unknown"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "expected": {"x": [[1.0]]}}],
                     "examples[0].expected names 'x', which is not an input with a gradient — "
                     "those are W", id="expected-not-differentiable"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "expected": {"W": [1.0, 2.0]}}],
                     "examples[0].expected.W has shape (2,) but input 'W' has shape (1, 1) — a "
                     "gradient has its input's shape", id="expected-shape"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "expected": [1.0]}],
                     "examples[0].expected=[1.0] must map input names to gradients",
                     id="expected-not-a-table"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "rtol": -1}],
                     "examples[0].rtol=-1 must be a number >= 0, e.g. 1e-3", id="rtol"),
        pytest.param([{"x": [[1.0]], "W": [[1.0]], "atol": "1"}],
                     "examples[0].atol='1' must be a number >= 0, e.g. 1e-3", id="atol"),
    ],
)
def test_spec_rejects_examples(examples, message):
    assert spec_error(forward=matmul, inputs=XW, examples=examples) == WHERE + message


def test_examples_are_checked_and_dims_inferred():
    spec = Spec(
        forward=matmul, inputs=XW,
        examples=[{"x": [[1.0, 2.0]], "W": [[1.0], [2.0]], "expected": {"W": [[1.0], [2.0]]},
                   "rtol": 1e-3, "atol": 0}],
    )
    (example,) = spec.examples
    assert example.dims == {"n": 1, "d": 2}
    assert example.index == 0 and example.rtol == 1e-3 and example.atol == 0.0
    assert example.values["x"].dtype == torch.float64
    assert torch.equal(example.expected["W"], torch.tensor([[1.0], [2.0]], dtype=torch.float64))
    assert example.describe() == "n=1, d=2; x=[[1.0, 2.0]], W=[[1.0], [2.0]]"


def test_example_values_are_read_in_float64_not_rounded_through_float32():
    """-1.9245 is not a float32: read at torch's default dtype and widened, it would become
    -1.9244999885559082 (and the notebook's printed values other points than printed)."""
    spec = Spec(forward=matmul, inputs=XW,
                examples=[{"x": [[-1.9245, 0.4336]], "W": [[1], [2]],
                           "expected": {"W": [[0.6641], [0.1]]}}])
    (example,) = spec.examples
    assert example.values["x"].tolist() == [[-1.9245, 0.4336]]
    assert example.values["W"].dtype == torch.float64
    assert example.expected["W"].tolist() == [[0.6641], [0.1]]
    assert example.describe() == "n=1, d=2; x=[[-1.9245, 0.4336]], W=[[1.0], [2.0]]"


# ---------------------------------------------------------------------------------- from_module


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.scale = torch.nn.Parameter(torch.ones(()), requires_grad=False)

    def forward(self, x):
        return self.linear(x) * self.scale


def test_from_module_parameters_become_inputs():
    line = inspect.currentframe().f_lineno + 1
    spec = Spec.from_module(
        Tiny(), inputs={"x": Input(["n", 2], requires_grad=False)},
        forward=lambda model, x: model(x).square().mean(), name="tiny",
    )
    assert list(spec.inputs) == ["x", "scale", "linear.weight", "linear.bias"]
    assert spec.differentiable == ("linear.weight", "linear.bias")
    assert spec.inputs["linear.weight"] == Input((1, 2), low=-1.0, high=1.0)
    assert spec.inputs["linear.bias"] == Input((1,), low=-1.0, high=1.0)
    assert spec.inputs["scale"].requires_grad is False
    assert (spec.path, spec.line, spec.name) == (__file__, line, "tiny")
    values = {
        "x": torch.tensor([[1.0, 2.0]]), "linear.weight": torch.tensor([[3.0, 4.0]]),
        "linear.bias": torch.tensor([0.5]), "scale": torch.tensor(2.0), "n": 1,
    }
    assert spec.forward(values).item() == pytest.approx((2 * (3 + 8 + 0.5)) ** 2)


def test_from_module_without_forward_calls_the_module_on_the_inputs():
    spec = Spec.from_module(
        torch.nn.Linear(2, 1), inputs={"x": Input(["n", 2], requires_grad=False)},
        parameter_low=-0.5, parameter_high=0.5,
    )
    assert spec.inputs["weight"] == Input((1, 2), low=-0.5, high=0.5)
    values = {"x": torch.tensor([[1.0, 2.0]]), "weight": torch.tensor([[3.0, 4.0]]),
              "bias": torch.tensor([1.0]), "n": 1}
    assert spec.forward(values).tolist() == [[12.0]]


def test_from_module_examples_name_parameters_by_their_dotted_names():
    spec = Spec.from_module(
        Tiny(), inputs={"x": Input(["n", 2], requires_grad=False)},
        examples=[{"x": [[1.0, 2.0]], "linear.weight": [[0.1, 0.2]], "linear.bias": [0.0],
                   "scale": 1.0, "expected": {"linear.bias": [1.0]}}],
    )
    assert spec.examples[0].expected["linear.bias"].tolist() == [1.0]


@pytest.mark.parametrize(
    ("module", "inputs", "message"),
    [
        pytest.param(3, {"x": Input()}, "module=3 is not a torch.nn.Module", id="not-a-module"),
        pytest.param(torch.nn.Linear(2, 1), {"weight": Input([2], requires_grad=False)},
                     "input 'weight' has the name of a parameter of the module — rename the "
                     "input", id="name-clash"),
    ],
)
def test_from_module_errors_are_located(module, inputs, message):
    with pytest.raises(SpecError) as info:
        Spec.from_module(module, inputs=inputs, name="sq", path="specs/t.py", line=7)
    assert str(info.value) == WHERE + message


def test_from_module_validates_forward_parameters():
    with pytest.raises(SpecError) as info:
        Spec.from_module(
            torch.nn.Linear(2, 1), inputs={"x": Input(["n", 2], requires_grad=False)},
            forward=lambda model, y: model(y), name="sq", path="specs/t.py", line=7,
        )
    assert str(info.value) == WHERE + (
        "forward takes parameter 'y', which is none of model, x — rename it or give it a default"
    )
