"""How many outputs a forward formula returns, and which outputs other formulas index.

A TOML forward written as a tuple display, ``"(x * y, x + y)"``, returns that many
outputs; its backward formulas see ``grad`` and ``result`` as tuples of as many
entries. An index past the end is known when the file loads, so it is a SpecError
there, not an IndexError in every item. A forward that is a call (``topk(x, 2)``)
decides its arity at run time: nothing is said about it here.

>>> from harness.load.formula import compile_formula
>>> forward = compile_formula("(x * 2, x + 1)", variables=["x"])
>>> output_count(forward)
2
>>> constant_indices(compile_formula("grad[1] + grad[-1]", variables=["grad"]), "grad")
[1, -1]
"""

from __future__ import annotations

import ast

from harness.load.formula import Formula


def output_count(formula: Formula) -> int | None:
    """The number of outputs a tuple or list display returns; None for any other formula."""
    body = _tree(formula).body
    return len(body.elts) if isinstance(body, (ast.Tuple, ast.List)) else None


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
