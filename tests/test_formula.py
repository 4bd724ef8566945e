"""harness.load.formula: what formulas compile to, and the exact words of every rejection."""

from __future__ import annotations

import importlib
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from words import DOCS

from harness.errors import SpecError
from harness.load.formula import Formula, compile_formula
from harness.load.whitelist import ATTRIBUTES, CONSTANTS, FUNCTIONS

VARIABLES = ["x", "y", "A", "B", "grad", "result", "n"]
ELSEWHERE = (
    "a formula is one expression over the inputs and whitelisted functions; "
    "write a Python spec (specs/*.py) for anything else"
)
CALLABLE = "a formula can call only whitelisted functions"
PRIVATE = (
    "a formula cannot use names that start with '_' or contain '__'; "
    "write a Python spec (specs/*.py) for anything else"
)


def values() -> dict[str, object]:
    return {
        "x": torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64),
        "y": torch.tensor([1.5, 2.0, -0.5], dtype=torch.float64),
        "A": torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]],
                          dtype=torch.float64),
        "B": torch.arange(6, dtype=torch.float64).reshape(3, 2),
        "grad": torch.tensor(2.0, dtype=torch.float64),
        "n": 3,
    }


def compiled(source: str) -> Formula:
    return compile_formula(source, variables=VARIABLES, what="backward.W")


# --- what compiles, and what it evaluates to ---------------------------------------------------

ACCEPTED: list[tuple[str, Callable[..., object]]] = [
    ("x + y * 2 - x / y", lambda x, y, **_: x + y * 2 - x / y),
    ("x ** 2 // 1 % 3", lambda x, **_: x**2 // 1 % 3),
    ("-x + +y", lambda x, y, **_: -x + y),
    ("A @ B", lambda A, B, **_: A @ B),
    ("A.T @ A.mT + A.H - A.mH", lambda A, **_: A.T @ A.mT + A.H - A.mH),
    ("x[0] + A[1, 2]", lambda x, A, **_: x[0] + A[1, 2]),
    ("A[:, None]", lambda A, **_: A[:, None]),
    ("A[..., 1:]", lambda A, **_: A[..., 1:]),
    ("A[::2, -1]", lambda A, **_: A[::2, -1]),
    ("sum(A, dim=0)", lambda A, **_: A.sum(dim=0)),
    ("sum(A, dim=(0, 1), keepdim=True)", lambda A, **_: A.sum(dim=(0, 1), keepdim=True)),
    ("mean(A, [1], keepdim=True)", lambda A, **_: A.mean([1], keepdim=True)),
    ("torch.sin(x) - sin(x)", lambda x, **_: torch.zeros_like(x)),
    ("torch.softmax(x, 0)", lambda x, **_: torch.softmax(x, 0)),
    ("pi * x + e + (x < inf)", lambda x, **_: torch.pi * x + torch.e + 1),
    ("einsum('ij,jk->ik', A, B)", lambda A, B, **_: A @ B),
    ('einsum("ii", A)', lambda A, **_: A.trace()),
    ("where(x > 0, x, 0 * x)", lambda x, **_: torch.where(x > 0, x, 0 * x)),
    ("(x >= 0) == (y < 1)", lambda x, y, **_: (x >= 0) == (y < 1)),
    ("max(A, dim=1).values + min(A, 1).values", lambda A, **_: A.amax(1) + A.amin(1)),
    ("max(A, dim=1).indices", lambda A, **_: A.argmax(1)),
    ("sort(x).values", lambda x, **_: x.sort().values),
    ("max(x) + min(x, y)", lambda x, y, **_: x.max() + torch.min(x, y)),
    ("softmax(x, dim=0) * log_softmax(y, 0)",
     lambda x, y, **_: F.softmax(x, dim=0) * F.log_softmax(y, 0)),
    ("gelu(x) + silu(x) + softplus(x) + logsigmoid(x)",
     lambda x, **_: F.gelu(x) + F.silu(x) + F.softplus(x) + F.logsigmoid(x)),
    ("clamp(x, min=0, max=inf)", lambda x, **_: x.clamp(0)),
    ("eye_like(A) * 2", lambda A, **_: 2 * torch.eye(3, dtype=A.dtype)),
    ("numel(A) * x / n", lambda x, **_: 9 * x / 3),
    ("slogdet(A)[1] - logdet(A)", lambda A, **_: torch.zeros((), dtype=A.dtype)),
    ("inv(A) @ A", lambda A, **_: torch.eye(3, dtype=A.dtype)),
    ("solve(A, x)", lambda A, x, **_: torch.linalg.solve(A, x)),
    ("norm(A) + vector_norm(x, 1) + matrix_norm(A)",
     lambda A, x, **_: 2 * torch.linalg.norm(A) + x.abs().sum()),
    ("A.shape[0] * x + A.ndim", lambda A, x, **_: 3 * x + 2),
    ("expand(x[:, None], (3, 3)) + transpose(A, 0, 1)", lambda x, A, **_: x[:, None] + A.T),
    ("cross(x, y)", lambda x, y, **_: torch.linalg.cross(x, y)),
    ("grad * cos(x)", lambda grad, x, **_: grad * x.cos()),
    ("\n  sum(\n    x\n  )\n", lambda x, **_: x.sum()),  # a TOML multi-line string
]


@pytest.mark.parametrize(("source", "expected"), ACCEPTED, ids=[s for s, _ in ACCEPTED])
def test_an_accepted_formula_evaluates_as_torch_would(source, expected) -> None:
    torch.testing.assert_close(compiled(source)(**values()), expected(**values()))


def test_a_formula_is_differentiable_and_agrees_with_its_backward_formula() -> None:
    variables = ["X", "W", "b", "Y", "N", "grad"]
    forward = compile_formula("mean((X @ W + b - Y) ** 2)", variables=variables)
    backward = compile_formula("grad * 2 * X.mT @ (X @ W + b - Y) / N",
                               variables=variables, what="backward.W")
    generator = torch.Generator().manual_seed(0)
    X, W, b, Y = (torch.randn(*shape, generator=generator, dtype=torch.float64)
                  for shape in [(5, 3), (3, 2), (2,), (5, 2)])
    W.requires_grad_()
    forward(X=X, W=W, b=b, Y=Y).backward()
    expected = backward(X=X, W=W.detach(), b=b, Y=Y, N=10, grad=torch.tensor(1.0))
    torch.testing.assert_close(W.grad, expected)


def test_names_are_the_inputs_used_and_nothing_else() -> None:
    formula = compiled("grad * cos(x) + pi + sum(A, dim=0, keepdim=True).T")
    assert formula.names == frozenset({"grad", "x", "A"})
    assert formula.source == "grad * cos(x) + pi + sum(A, dim=0, keepdim=True).T"
    assert compiled("torch.exp(2.0) * e").names == frozenset()


def test_extra_values_are_ignored_and_missing_ones_named() -> None:
    formula = compiled("x * grad")
    torch.testing.assert_close(formula(x=torch.tensor(3.0), grad=torch.tensor(2.0), z=object()),
                               torch.tensor(6.0))
    with pytest.raises(TypeError) as caught:
        formula(x=torch.tensor(3.0))
    assert str(caught.value) == (
        'backward.W = "x * grad": no value given for grad — pass every name in .names')


def test_an_input_shadows_a_constant_but_never_a_function() -> None:
    formula = compile_formula("norm(x) * norm + e", variables=["x", "norm", "e"])
    assert formula.names == frozenset({"x", "norm", "e"})
    result = formula(x=torch.tensor([3.0, 4.0]), norm=10.0, e=1.0)
    torch.testing.assert_close(result, torch.tensor(51.0))


def test_a_formula_pickles_by_recompiling() -> None:
    formula = compiled("sin(x) * n")
    again = pickle.loads(pickle.dumps(formula))
    assert (again.source, again.names, again.what) == (formula.source, formula.names, "backward.W")
    torch.testing.assert_close(again(**values()), formula(**values()))


def test_the_public_tables() -> None:
    assert frozenset({"T", "mT", "H", "mH", "shape", "ndim", "values", "indices"}) == ATTRIBUTES
    assert dict(CONSTANTS) == {"pi": torch.pi, "e": torch.e, "inf": torch.inf}
    assert FUNCTIONS["gelu"] is F.gelu
    assert FUNCTIONS["inv"] is torch.linalg.inv
    assert FUNCTIONS["expand"] is torch.broadcast_to
    assert all(callable(function) for function in FUNCTIONS.values())
    assert not {name for name in FUNCTIONS if name.startswith("_") or "__" in name}
    with pytest.raises(TypeError):
        FUNCTIONS["open"] = open  # type: ignore[index]


def test_docs_list_every_function_attribute_and_constant() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "formulas.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `([\w.]+)` \|", docs, flags=re.MULTILINE)
    listed = {name: target for name, target in rows if target.startswith(("torch.", "harness."))}
    assert set(listed) == set(FUNCTIONS)
    for name, target in listed.items():
        module, _, attribute = target.rpartition(".")
        assert FUNCTIONS[name] is getattr(importlib.import_module(module), attribute), name
    for name in [*ATTRIBUTES, *CONSTANTS]:
        assert f"`{name}`" in docs


def test_eye_like_needs_a_square_matrix() -> None:
    with pytest.raises(ValueError, match=r"eye_like needs a square matrix"):
        FUNCTIONS["eye_like"](torch.zeros(2, 3))


# --- rejections, word for word -----------------------------------------------------------------

REJECTED: list[tuple[str, str]] = [
    ("sin(x", "invalid syntax at column 4: '(' was never closed — write one Python expression"),
    ("x +", "invalid syntax at the end — write one Python expression"),
    ("x = 1", "invalid syntax at column 3 — write one Python expression"),
    ("import os", "invalid syntax at column 1 — write one Python expression"),
    ("  x y", "invalid syntax at column 5 — write one Python expression"),
    ("sum(x y)", "invalid syntax at column 5: Perhaps you forgot a comma? "
                 "— write one Python expression"),
    ("(x\n+ y", "invalid syntax at column 1: '(' was never closed — write one Python expression"),
    ("x\n+ y", "invalid syntax at line 2, column 1 — write one Python expression"),
    ("sum(x, dim=0, dim=1)",
     "invalid syntax at column 15: keyword argument repeated: dim — write one Python expression"),
    ("x\x00", "invalid syntax: source code string cannot contain null bytes "
              "— write one Python expression"),
    ("", "the formula is empty — write one Python expression"),
    (" \n ", "the formula is empty — write one Python expression"),
    ("y2", "unknown name 'y2' — the formula can use x, y, A, B, grad, result, n "
           "(did you mean 'y'?)"),
    ("gard * x", "unknown name 'gard' — the formula can use x, y, A, B, grad, result, n "
                 "(did you mean 'grad'?)"),
    ("zeta", "unknown name 'zeta' — the formula can use x, y, A, B, grad, result, n"),
    ("grad * coss(x)", f"unknown function 'coss' — did you mean 'cos'? {DOCS}"),
    ("soft_max(x, 0)", f"unknown function 'soft_max' — did you mean 'softmax'? {DOCS}"),
    ("open('f')", f"unknown function 'open' — {CALLABLE} {DOCS}"),
    ("x(1)", f"'x' is an input, not a function — {CALLABLE} {DOCS}"),
    ("pi(1)", f"'pi' is a constant, not a function — {CALLABLE} {DOCS}"),
    ("sin", "function 'sin' is not a value — call it: sin(...)"),
    ("sin(x)(y)", f"calling 'sin(x)' is not allowed — {CALLABLE}, by name {DOCS}"),
    ("torch.save(x, 'f')",
     f"torch.save is not allowed — {CALLABLE}, as f(...) or torch.f(...) {DOCS}"),
    ("torch.sine(x)", f"torch.sine is not allowed — did you mean torch.sin? {DOCS}"),
    ("torch.nn.functional.softmax(x, 0)",
     f"torch.nn.functional.softmax is not allowed — write softmax(...) {DOCS}"),
    ("F.relu(x)", f"F.relu is not allowed — write relu(...) {DOCS}"),
    ("torch.pi * x", f"torch.pi is not allowed — write pi {DOCS}"),
    ("torch", "'torch' is not a value in a formula — call whitelisted functions as f(...) "
              "or torch.f(...)"),
    ("x.sum()", "method call x.sum(...) is not allowed — write sum(x) instead"),
    ("(x + y).sum(dim=0)",
     "method call (x + y).sum(...) is not allowed — write sum(x + y, ...) instead"),
    ("x.numpy()", f"method call x.numpy(...) is not allowed — {CALLABLE}, by name {DOCS}"),
    ("x.data", "attribute 'data' is not allowed — a formula can use only the attributes T, mT, "
               "H, mH, shape, ndim, values, indices; write a Python spec (specs/*.py) for "
               "anything else"),
    ("x.valeus", "attribute 'valeus' is not allowed (did you mean 'values'?) — a formula can use "
                 "only the attributes T, mT, H, mH, shape, ndim, values, indices; write a Python "
                 "spec (specs/*.py) for anything else"),
    ("x.__class__", f"'__class__' is not allowed — {PRIVATE}"),
    ("_x", f"'_x' is not allowed — {PRIVATE}"),
    ("sum(x, _dim=0)", f"'_dim' is not allowed — {PRIVATE}"),
    ("sin(x, out=y)", "keyword 'out' is not allowed — a formula must not write into its inputs; "
                      "drop out=... and use the value sin(...) returns"),
    ("sum(x, **y)", f"'**' unpacking is not allowed — {ELSEWHERE}"),
    ("sum(*x)", f"'*' unpacking is not allowed — {ELSEWHERE}"),
    ("lambda: 1", f"lambda is not allowed — {ELSEWHERE}"),
    ("x if n else y", f"'if ... else' is not allowed — {ELSEWHERE}"),
    ("[i for i in x]", f"a list comprehension is not allowed — {ELSEWHERE}"),
    ("{i for i in x}", f"a set comprehension is not allowed — {ELSEWHERE}"),
    ("{i: i for i in x}", f"a dict comprehension is not allowed — {ELSEWHERE}"),
    ("sum(i for i in x)", f"a generator expression is not allowed — {ELSEWHERE}"),
    ("f'{x}'", f"an f-string is not allowed — {ELSEWHERE}"),
    ("(y := x)", f"':=' (an assignment expression) is not allowed — {ELSEWHERE}"),
    ("{'a': x}", f"a dict display is not allowed — {ELSEWHERE}"),
    ("{x}", f"a set display is not allowed — {ELSEWHERE}"),
    ("x and y", f"'and' is not allowed — {ELSEWHERE}"),
    ("not x", f"'not' is not allowed — {ELSEWHERE}"),
    ("~x", f"'~' is not allowed — {ELSEWHERE}"),
    ("x | y", f"'|' is not allowed — {ELSEWHERE}"),
    ("x << 1", f"'<<' is not allowed — {ELSEWHERE}"),
    ("x is y", f"'is' is not allowed — {ELSEWHERE}"),
    ("x not in y", f"'not in' is not allowed — {ELSEWHERE}"),
    ("await x", f"await is not allowed — {ELSEWHERE}"),
    ("b'x'", f"bytes b'x' are not allowed — {ELSEWHERE}"),
    ("x + 'a'", "the string 'a' is allowed only as a function argument, such as einsum's equation"),
    ("einsum('" + "i" * 101 + "', x)",
     "the string 'iiiiiiiiiiiiiiiiiiii'... is 101 characters long, over the limit of 100 "
     "— shorten it"),
    ("x" + " + x" * 64, "the formula nests more than 64 levels deep "
                        "— simplify it or write a Python spec (specs/*.py)"),
    ("-" * 3999 + "x", "the formula nests more than 64 levels deep "  # too deep to parse on 3.11
                       "— simplify it or write a Python spec (specs/*.py)"),
    ("x" * 4001, "the formula is 4001 characters long, over the limit of 4000 "
                 "— write a Python spec (specs/*.py) for anything longer"),
]


def shown(source: str) -> str:
    return json.dumps(source if len(source) <= 120 else source[:117] + "...", ensure_ascii=False)


@pytest.mark.parametrize(("source", "message"), REJECTED, ids=[s[:40] for s, _ in REJECTED])
def test_a_rejection_names_the_value_the_rule_and_the_fix(source: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        compiled(source)
    error = caught.value
    assert error.message == f"backward.W = {shown(source)}: {message}"
    assert str(error) == error.message  # the loader adds path, line and spec
    assert (error.path, error.line, error.spec) == (None, None, None)
    assert error.__cause__ is None and error.__suppress_context__


def test_the_message_quotes_the_formula_like_toml_does() -> None:
    with pytest.raises(SpecError) as caught:
        compile_formula('einsum("ij->k", x) + y', variables=["x"], what="forward")
    assert str(caught.value) == (
        'forward = "einsum(\\"ij->k\\", x) + y": unknown name \'y\' — the formula can use x')


def test_a_formula_with_no_inputs_says_so() -> None:
    with pytest.raises(SpecError, match=r"^formula = \"x\": unknown name 'x' — the formula can "
                                        r"use no inputs$"):
        compile_formula("x", variables=[])


def test_a_formula_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(SpecError) as caught:
        compile_formula(3, variables=["x"], what="forward")  # type: ignore[arg-type]
    assert str(caught.value) == "forward = 3: a formula must be a string, not int — quote it"


def test_the_nesting_limit_is_inclusive() -> None:
    formula = compiled("x" + " + x" * 63)  # 64 levels
    torch.testing.assert_close(formula(**values()), 64 * values()["x"])


def test_an_expensive_power_compiles_without_being_computed() -> None:
    assert compiled("9 ** 9 ** 9").names == frozenset()


# --- fuzzing: anything in, a Formula or a SpecError out ----------------------------------------

TOKENS = [
    "x", "y", "A", "grad", "n", "sin", "sum", "einsum", "torch", "torch.sin", "torch.save",
    "__import__", "__class__", "_x", "open", "lambda", "for", "in", "if", "else", "not", "and",
    "is", "yield", "await", ":=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "...", "*", "**",
    "+", "-", "/", "//", "%", "@", "<", "==", "=", "~", "|", "T", "mT", "values", "shape", "0",
    "1", "2.5", "1e308", "9", "None", "True", "'ij->i'", '"', "'", "f'", "b'", "\\", "#", "\n",
    " ", "dim", "keepdim", "pi", "inf", ";", "\x00", "é", "\t",
]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "*", "@", "**", "<", "|", "and", "is"]), inner)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["sin", "sum", "torch.exp", "x.sum", "type", "F.gelu"]),
                  st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(inner, st.sampled_from(["T", "mT", "values", "data", "__class__"]))
        .map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}, :, None]"),
        inner.map(lambda e: f"[{e} for _ in x]"),
        inner.map(lambda e: f"-{e}"),
    )


# Mostly well-formed expressions, so that the checker (not the parser) does the rejecting.
EXPRESSIONS = st.recursive(
    st.sampled_from(["x", "y", "A", "n", "pi", "1", "2.0", "None", "...", "'ij'", "zz", "_p",
                     "torch", "sin"]),
    _extend,
    max_leaves=20,
)


def compiles_or_raises_spec_error(source: str) -> None:
    try:
        formula = compiled(source)
    except SpecError as error:
        assert error.message.startswith("backward.W = ")
    else:
        assert isinstance(formula, Formula)
        assert formula.names <= set(VARIABLES)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.sampled_from(["", " "]))
def test_token_soup_compiles_or_raises_spec_error(tokens: list[str], separator: str) -> None:
    compiles_or_raises_spec_error(separator.join(tokens))


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS)
def test_generated_expressions_compile_or_raise_spec_error(source: str) -> None:
    compiles_or_raises_spec_error(source)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_compiles_or_raises_spec_error(source: str) -> None:
    compiles_or_raises_spec_error(source)
