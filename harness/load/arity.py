"""How many outputs a forward formula returns, and which outputs other formulas index.

A TOML forward written as a tuple display, ``"(x * y, x + y)"``, returns that many
outputs; its backward formulas see ``grad`` and ``result`` as tuples of as many
entries. An index past the end is known when the file loads, so it is a SpecError
there, not an IndexError in every item. A forward that is a call (``topk(x, 2)``)
that may return a tuple (``topk(x, 2)``) decides its arity at run time; any other
formula (an operator, an elementwise call, an index) returns one tensor, so the
``undefined`` check, which needs two outputs, has no item for it.

>>> from harness.load.formula import compile_formula
>>> forward = compile_formula("(x * 2, x + 1)", variables=["x"])
>>> tuple_length(forward), output_count(forward)
(2, 2)
>>> output_count(compile_formula("sin(x) * 2", variables=["x"]))
1
>>> [output_count(compile_formula(f, variables=["x"])) for f in ("topk(x, 2)", "x[0:2]")]
[None, None]
>>> constant_indices(compile_formula("grad[1] + grad[-1]", variables=["grad"]), "grad")
[1, -1]
"""

from __future__ import annotations

import ast

from harness.load.formula import Formula

# Whitelisted functions that may return a tuple: (values, indices), pieces, (sign, logdet).
TUPLE_RETURNING = frozenset({"topk", "max", "min", "sort", "split", "unbind", "slogdet",
                             "where"})


def tuple_length(formula: Formula) -> int | None:
    """The number of outputs a tuple or list display returns; None for any other formula."""
    body = _tree(formula).body
    return len(body.elts) if isinstance(body, (ast.Tuple, ast.List)) else None


def output_count(formula: Formula) -> int | None:
    """How many outputs a forward formula returns, where its text says: a tuple display's
    length, 1 for an operator, a call that returns one tensor, an index or an attribute;
    None where a call (or a list input named alone) decides at run time."""
    body = _tree(formula).body
    if isinstance(body, (ast.Tuple, ast.List)):
        return len(body.elts)
    if isinstance(body, ast.Subscript) and isinstance(body.slice, ast.Slice):
        return None  # xs[0:2] of a list input is a list
    if isinstance(body, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant, ast.Subscript,
                         ast.Attribute)):
        return 1
    if isinstance(body, ast.Call):
        callee = body.func
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        return None if name.removeprefix("__fn_") in TUPLE_RETURNING else 1
    return None


def constant_indices(formula: Formula, name: str) -> list[int]:
    """The integer constants ``name`` is subscripted with (``grad[1]``, ``grad[-1]``)."""
    return [index for node in ast.walk(_tree(formula))
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == name and (index := _integer(node.slice)) is not None]


def _tree(formula: Formula) -> ast.Expression:
    return ast.parse(formula.source.lstrip(), mode="eval")


def _integer(node: ast.AST) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _integer(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None
