"""Gradient formulas from spec files, compiled through a whitelisted AST.

A TOML spec file is data, so loading one must never run code it names. A formula is
parsed with :func:`ast.parse`, every node is checked against a whitelist, calls are
bound to whitelisted torch callables, and only then is the tree compiled. Evaluation
sees only the whitelisted functions, the constants and the inputs. ``python -m harness
formulas`` prints the whitelist (messages name that command); docs/formulas.md is the
reference with a note per function.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SpecError
from harness.load.whitelist import ATTRIBUTES, ATTRIBUTES_IN_ORDER, CONSTANTS, FUNCTIONS

__all__ = ["Formula", "compile_formula"]

MAX_LENGTH = 4000
MAX_DEPTH = 64
MAX_STRING = 100

_DOCS = "(the whitelist: python -m harness formulas)"
_ELSEWHERE = (
    "a formula is one expression over the inputs and whitelisted functions; "
    "write a Python spec (specs/*.py) for anything else"
)
_CALLABLE = "a formula can call only whitelisted functions"
# Also what a parser's RecursionError reads as: Python 3.13 parses deeper than 3.11 does.
_TOO_DEEP = (f"the formula nests more than {MAX_DEPTH} levels deep — simplify it or write a "
             "Python spec (specs/*.py)")
# Call targets are renamed to names no source can spell, so an input never shadows one.
_FN = "__fn_"
# Torch's C code imports lazily through the calling frame's builtins, so __import__ must stay;
# a validated formula cannot name it (or any builtin) itself.
_BUILTINS = {"__import__": builtins.__import__}
_NAMESPACE = {"__builtins__": _BUILTINS, **{_FN + k: v for k, v in FUNCTIONS.items()}, **CONSTANTS}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)
_SCALARS = (bool, int, float, complex, type(None), type(Ellipsis))
_FORBIDDEN = {
    ast.Lambda: "lambda", ast.IfExp: "'if ... else'", ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension", ast.DictComp: "a dict comprehension",
    ast.GeneratorExp: "a generator expression", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.NamedExpr: "':=' (an assignment expression)",
    ast.Starred: "'*' unpacking", ast.Dict: "a dict display", ast.Set: "a set display",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield from",
    ast.And: "'and'", ast.Or: "'or'", ast.Not: "'not'", ast.Invert: "'~'",
    ast.BitOr: "'|'", ast.BitAnd: "'&'", ast.BitXor: "'^'", ast.LShift: "'<<'",
    ast.RShift: "'>>'", ast.Is: "'is'", ast.IsNot: "'is not'", ast.In: "'in'",
    ast.NotIn: "'not in'",
}


@dataclass(frozen=True, eq=False)
class Formula:
    """A validated formula; call it with the inputs as keywords to evaluate it.

    ``names`` are the inputs it uses; ``what`` names it in messages (``"backward.W"``).
    """

    source: str
    names: frozenset[str]
    what: str
    variables: tuple[str, ...]
    _code: Any = field(repr=False)

    def __call__(self, **values: Any) -> Any:
        missing = sorted(self.names - values.keys())
        if missing:
            raise TypeError(f"{quoted(self.what, self.source)}: no value given for "
                            f"{', '.join(missing)} — pass every name in .names")
        namespace = dict(_NAMESPACE)
        namespace.update((name, values[name]) for name in self.names)
        return eval(self._code, namespace)  # the tree was validated by compile_formula

    def __reduce__(self) -> tuple[Any, ...]:  # code objects do not pickle: recompile
        return (_recompile, (self.source, self.variables, self.what))


def _recompile(source: str, variables: tuple[str, ...], what: str) -> Formula:
    return compile_formula(source, variables=variables, what=what)


def compile_formula(source: str, *, variables: Iterable[str], what: str = "formula") -> Formula:
    """Check ``source`` against the whitelist and compile it; raise SpecError if it breaks a rule.

    >>> import torch
    >>> f = compile_formula("grad * 2 * x", variables=["x", "grad"], what="backward.x")
    >>> sorted(f.names)
    ['grad', 'x']
    >>> f(x=torch.tensor(3.0), grad=torch.tensor(0.5))
    tensor(3.)
    >>> compile_formula("open('f')", variables=["x"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    harness.errors.SpecError: formula = "open('f')": unknown function 'open' — a formula can ...
    """
    variables = tuple(dict.fromkeys(variables))
    try:
        text, tree = _parse(source)
        checker = _Checker(text, variables)
        checker.check(tree)
        code = _quietly(compile, tree, f"<{what}>", "eval")
    except SpecError as error:
        raise SpecError(f"{quoted(what, source)}: {error.message}") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise SpecError(f"{quoted(what, source)}: {_syntax(error, source)}") from None
    return Formula(source, frozenset(checker.names), what, variables, code)


def _parse(source: object) -> tuple[str, ast.Expression]:
    if not isinstance(source, str):
        raise SpecError(f"a formula must be a string, not {type(source).__name__} — quote it")
    text = source.lstrip()  # TOML multi-line strings indent; Python would not parse that
    if not text.strip():
        raise SpecError("the formula is empty — write one Python expression")
    if len(source) > MAX_LENGTH:
        raise SpecError(f"the formula is {len(source)} characters long, over the limit of "
                        f"{MAX_LENGTH} — write a Python spec (specs/*.py) for anything longer")
    tree = _quietly(ast.parse, text, "<formula>", "eval")
    if _depth(tree) > MAX_DEPTH:
        raise SpecError(_TOO_DEEP)
    return text, tree


def _quietly(function: Callable[..., Any], *args: Any) -> Any:
    # SyntaxWarnings (invalid escapes, `1(2)`) would become errors under `-W error`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def _syntax(error: BaseException, source: str) -> str:
    if isinstance(error, (RecursionError, MemoryError)):
        return _TOO_DEEP
    if not isinstance(error, SyntaxError):
        return f"invalid syntax: {error} — write one Python expression"
    detail = (error.msg or "").removeprefix("invalid syntax").lstrip(".: ")
    detail = f": {detail}" if detail else ""
    return f"invalid syntax{_where(error, source)}{detail} — write one Python expression"


def _where(error: SyntaxError, source: str) -> str:
    """Where the error is, counted in the source as written (it was parsed lstripped)."""
    if not error.lineno:
        return ""
    lead = source[: len(source) - len(source.lstrip())]
    line, column = error.lineno + lead.count("\n"), error.offset
    if error.lineno == 1 and column:
        column += len(lead) - (lead.rfind("\n") + 1)
    column_text = f"column {column}" if column else "the end"
    return f" at line {line}, {column_text}" if line > 1 else f" at {column_text}"


def _depth(tree: ast.AST) -> int:
    # Iterative, because the recursive checker and compile() must only see shallow trees.
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        depth += isinstance(node, ast.expr)
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return deepest


def quoted(what: str, source: object) -> str:
    """``what = "source"`` as messages show a formula (long ones cut)."""
    if not isinstance(source, str):
        return f"{what} = {source!r}"
    shown = source if len(source) <= 120 else source[:117] + "..."
    return f"{what} = {json.dumps(shown, ensure_ascii=False)}"


def _closest(word: str, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=3, cutoff=cutoff)
    # Typos rarely hit the first letters: 'coss' means 'cos' more than 'cross'.
    return max(matches, key=lambda match: match[:2] == word[:2], default=None)


def _forbidden(node: ast.AST) -> SpecError:
    what = _FORBIDDEN.get(type(node), type(node).__name__)
    return SpecError(f"{what} is not allowed — {_ELSEWHERE}")


class _Checker:
    """Walks a parsed formula, raising SpecError at the first node off the whitelist."""

    def __init__(self, text: str, variables: tuple[str, ...]) -> None:
        self.text = text
        self.variables = variables
        self.names: set[str] = set()

    def check(self, node: ast.AST, as_argument: bool = False) -> None:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise _forbidden(node)
        method(node, as_argument)

    def _Expression(self, node: ast.Expression, _: bool) -> None:
        self.check(node.body)

    def _BinOp(self, node: ast.BinOp, _: bool) -> None:
        if not isinstance(node.op, _BINOPS):
            raise _forbidden(node.op)
        self.check(node.left)
        self.check(node.right)

    def _UnaryOp(self, node: ast.UnaryOp, _: bool) -> None:
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise _forbidden(node.op)
        self.check(node.operand)

    def _BoolOp(self, node: ast.BoolOp, _: bool) -> None:
        raise _forbidden(node.op)

    def _Compare(self, node: ast.Compare, _: bool) -> None:
        for op in node.ops:
            if not isinstance(op, _COMPARISONS):
                raise _forbidden(op)
        for operand in (node.left, *node.comparators):
            self.check(operand)

    def _Constant(self, node: ast.Constant, as_argument: bool) -> None:
        value = node.value
        if isinstance(value, _SCALARS):
            return
        if not isinstance(value, str):  # only bytes are left
            raise SpecError(f"bytes {value!r} are not allowed — {_ELSEWHERE}")
        if not as_argument:
            raise SpecError(f"the string {value!r} is allowed only as a function argument, "
                            "such as einsum's equation")
        if len(value) > MAX_STRING:
            raise SpecError(f"the string {value[:20]!r}... is {len(value)} characters long, over "
                            f"the limit of {MAX_STRING} — shorten it")

    def _Name(self, node: ast.Name, _: bool) -> None:
        name = node.id
        _public(name)
        if name in self.variables:
            self.names.add(name)
        elif name == "torch":
            self._path("torch", called=False)
        elif name in FUNCTIONS:
            raise SpecError(f"function {name!r} is not a value — call it: {name}(...)")
        elif name not in CONSTANTS:
            uses = ", ".join(self.variables) or "no inputs"
            # A bare name is a value: an input or a constant before a function's name.
            guess = (_closest(name, [*self.variables, *CONSTANTS])
                     or _closest(name, FUNCTIONS))
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise SpecError(f"unknown name {name!r} — the formula can use {uses}{hint}")

    def _Tuple(self, node: ast.Tuple | ast.List, _: bool) -> None:
        for element in node.elts:
            self.check(element)

    _List = _Tuple

    def _Subscript(self, node: ast.Subscript, _: bool) -> None:
        self.check(node.value)
        self.check(node.slice)

    def _Slice(self, node: ast.Slice, _: bool) -> None:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.check(part)

    def _Attribute(self, node: ast.Attribute, _: bool) -> None:
        _public(node.attr)
        dotted = _dotted(node)
        if dotted and dotted.startswith("torch.") and "torch" not in self.variables:
            self._path(dotted, called=False)
        self.check(node.value)  # first, so the first offence in reading order is reported
        if node.attr not in ATTRIBUTES:
            allowed = ", ".join(ATTRIBUTES_IN_ORDER)
            guess = _closest(node.attr, ATTRIBUTES)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise SpecError(f"attribute {node.attr!r} is not allowed{hint} — a formula can use "
                            f"only the attributes {allowed}; write a Python spec (specs/*.py) "
                            "for anything else")

    def _Call(self, node: ast.Call, _: bool) -> None:
        name = self._callee(node)
        node.func = ast.copy_location(ast.Name(id=_FN + name, ctx=ast.Load()), node.func)
        for argument in node.args:
            self.check(argument, as_argument=True)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise SpecError(f"'**' unpacking is not allowed — {_ELSEWHERE}")
            _public(keyword.arg)
            if keyword.arg == "out":
                raise SpecError(f"keyword 'out' is not allowed — a formula must not write into "
                                f"its inputs; drop out=... and use the value {name}(...) returns")
            self.check(keyword.value, as_argument=True)

    def _callee(self, node: ast.Call) -> str:
        """The whitelisted function name a call targets."""
        func = node.func
        if isinstance(func, ast.Name):
            _public(func.id)
            if func.id in FUNCTIONS:
                return func.id
            if func.id in self.variables or func.id in CONSTANTS:
                kind = "an input" if func.id in self.variables else "a constant"
                raise SpecError(f"{func.id!r} is {kind}, not a function — {_CALLABLE} {_DOCS}")
            guess = _closest(func.id, FUNCTIONS)
            hint = f"did you mean {guess!r}?" if guess else _CALLABLE
            raise SpecError(f"unknown function {func.id!r} — {hint} {_DOCS}")
        if not isinstance(func, ast.Attribute):
            self.check(func)  # so the first offence in reading order is the one reported
            raise SpecError(f"calling {self._segment(func)!r} is not allowed — {_CALLABLE}, "
                            f"by name {_DOCS}")
        dotted = _dotted(func)
        for part in (dotted or func.attr).split("."):
            _public(part)
        if dotted and dotted.split(".")[0] not in self.variables:  # a module path
            return self._path(dotted, called=True)
        self.check(func.value)
        receiver = self._segment(func.value)
        if func.attr in FUNCTIONS:
            rest = ", ..." if node.args or node.keywords else ""
            fix = f"write {func.attr}({receiver}{rest}) instead"
        else:
            fix = f"{_CALLABLE}, by name {_DOCS}"
        if not isinstance(func.value, _ATOMS):
            receiver = f"({receiver})"  # get_source_segment leaves the parentheses out
        raise SpecError(f"method call {receiver}.{func.attr}(...) is not allowed — {fix}")

    def _path(self, dotted: str, *, called: bool) -> str:
        """``torch.f`` for a whitelisted ``f`` is an alias of ``f``; other module paths are off."""
        parts = dotted.split(".")
        last = parts[-1]
        if called and parts[:-1] == ["torch"] and last in FUNCTIONS:
            return last
        if parts == ["torch"]:
            raise SpecError("'torch' is not a value in a formula — call whitelisted functions "
                            "as f(...) or torch.f(...)")
        if last in FUNCTIONS:
            fix = f"write {last}(...)"
        elif last in CONSTANTS and not called:
            fix = f"write {last}"
        elif parts[:-1] == ["torch"] and (guess := _closest(last, FUNCTIONS, 0.8)):
            fix = f"did you mean torch.{guess}?"
        else:
            fix = f"{_CALLABLE}, as f(...) or torch.f(...)"
        raise SpecError(f"{dotted} is not allowed — {fix} {_DOCS}")

    def _segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.text, node) or ast.dump(node)[:40]
        return text if len(text) <= 40 else text[:37] + "..."


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _public(name: str) -> None:
    if name.startswith("_") or "__" in name:
        raise SpecError(f"{name!r} is not allowed — a formula cannot use names that start with "
                        "'_' or contain '__'; write a Python spec (specs/*.py) for anything else")
