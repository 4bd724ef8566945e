"""Escape attempts: a spec file is data, so no formula may reach Python, the disk or the env.

Every attempt must be refused by compile_formula itself (loading a spec never evaluates a
formula), with a SpecError, and must leave no trace: the tests run in an empty working
directory and check afterwards that it is still empty and that no variable was set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import harness.load.formula as formula_module
from harness.errors import SpecError
from harness.load.formula import compile_formula
from harness.load.whitelist import ATTRIBUTES, CONSTANTS, FUNCTIONS

VARIABLES = ["x", "y", "grad", "result", "n"]
SENTINEL = "HARNESS_SANDBOX_ESCAPED"

# (formula, a phrase its rejection must contain)
ATTEMPTS: list[tuple[str, str]] = [
    ("__import__('os')", "'__import__' is not allowed"),
    ("__import__('os').system('touch escaped')", "'__import__' is not allowed"),
    (f"__import__('os').environ.setdefault('{SENTINEL}', '1')", "'__import__' is not allowed"),
    ("exec('1')", "unknown function 'exec'"),
    (f"exec(\"import os; os.environ['{SENTINEL}'] = '1'\")", "unknown function 'exec'"),
    ("eval('1')", "unknown function 'eval'"),
    ("compile('1', '', 'eval')", "unknown function 'compile'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("open('escaped.txt', 'w')", "unknown function 'open'"),
    ("().__class__.__bases__[0].__subclasses__()", "'__subclasses__' is not allowed"),
    ("x.__class__", "'__class__' is not allowed"),
    ("x.__class__.__mro__[-1].__subclasses__()", "'__subclasses__' is not allowed"),
    ("grad.__dict__", "'__dict__' is not allowed"),
    ("getattr(x, 'data')", "unknown function 'getattr'"),
    ("setattr(x, 'data', y)", "unknown function 'setattr'"),
    ("type(x)", "unknown function 'type'"),
    ("vars()", "unknown function 'vars'"),
    ("globals()", "unknown function 'globals'"),
    ("locals()", "unknown function 'locals'"),
    ("breakpoint()", "unknown function 'breakpoint'"),
    ("print(x)", "unknown function 'print'"),
    ("__builtins__", "'__builtins__' is not allowed"),
    ("__builtins__['eval']('1')", "'__builtins__' is not allowed"),
    ("__fn_sin(x)", "'__fn_sin' is not allowed"),  # the name calls are compiled to
    ("torch.save(x, 'escaped.pt')", "torch.save is not allowed"),
    ("torch.load('escaped.pt')", "torch.load is not allowed"),
    ("torch.hub.load('owner/repo', 'model')", "torch.hub.load is not allowed"),
    ("torch.jit.load('escaped.pt')", "torch.jit.load is not allowed"),
    ("torch.ops.aten.add", "torch.ops.aten.add is not allowed"),
    ("torch.ops.aten.add(x, y)", "torch.ops.aten.add is not allowed"),
    ("torch.utils.cpp_extension", "torch.utils.cpp_extension is not allowed"),
    ("torch.utils.cpp_extension.load_inline('m', 'int x;')",
     "torch.utils.cpp_extension.load_inline is not allowed"),
    ("torch._C", "'_C' is not allowed"),
    ("torch._C._set_grad_enabled(False)", "'_C' is not allowed"),
    ("torch.nn.functional.softmax(x, 0)", "torch.nn.functional.softmax is not allowed"),
    ("torch", "'torch' is not a value in a formula"),
    ("torch.sin.__self__", "'__self__' is not allowed"),
    ("sin.__globals__", "'__globals__' is not allowed"),
    ("einsum.__module__", "'__module__' is not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("[i for i in x]", "a list comprehension is not allowed"),
    ("{i for i in x}", "a set comprehension is not allowed"),
    ("(i for i in x)", "a generator expression is not allowed"),
    ("f'{x}'", "an f-string is not allowed"),
    ("f'{x.__class__}'", "an f-string is not allowed"),
    ("(y := x)", "':=' (an assignment expression) is not allowed"),
    ("x.data", "attribute 'data' is not allowed"),
    ("x.grad", "attribute 'grad' is not allowed"),
    ("x._base", "'_base' is not allowed"),
    ("x.numpy()", "method call x.numpy(...) is not allowed"),
    ("x.item()", "method call x.item(...) is not allowed"),
    ("x.add_(1)", "method call x.add_(...) is not allowed"),
    ("x.register_hook(sin)", "method call x.register_hook(...) is not allowed"),
    ("x.backward()", "method call x.backward(...) is not allowed"),
    ("sin(x, out=x)", "keyword 'out' is not allowed"),
    ("sum(*x)", "'*' unpacking is not allowed"),
    ("sum(x, **{'dim': 0})", "'**' unpacking is not allowed"),
    ("{'a': x}", "a dict display is not allowed"),
    ("x if x else x", "'if ... else' is not allowed"),
    ("os.system('touch escaped')", "os.system is not allowed"),
    ("sys.modules", "unknown name 'sys'"),
    ("x.storage", "attribute 'storage' is not allowed"),
    ("os", "unknown name 'os'"),
    ("FUNCTIONS['sin']", "unknown name 'FUNCTIONS'"),
    ("import os", "invalid syntax"),
    ("x; __import__('os')", "invalid syntax"),
    ("x\nimport os", "invalid syntax"),
    ("'a'.join(x)", "the string 'a' is allowed only as a function argument"),
    ("sin(x).numpy()", "method call sin(x).numpy(...) is not allowed"),
    ("'%s' % x", "the string '%s' is allowed only as a function argument"),
]


@pytest.fixture
def empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SENTINEL, raising=False)
    return tmp_path


@pytest.mark.parametrize(("source", "phrase"), ATTEMPTS, ids=[s[:50] for s, _ in ATTEMPTS])
def test_an_escape_attempt_is_refused_without_side_effects(
    source: str, phrase: str, empty_directory: Path
) -> None:
    modules = set(sys.modules)
    with pytest.raises(SpecError) as caught:
        compile_formula(source, variables=VARIABLES, what="forward")
    assert phrase in caught.value.message
    assert list(empty_directory.iterdir()) == []
    assert SENTINEL not in os.environ
    assert set(sys.modules) == modules


def test_a_private_name_stays_refused_even_when_declared_as_an_input() -> None:
    with pytest.raises(SpecError, match="'__import__' is not allowed"):
        compile_formula("__import__('os')", variables=["__import__"])


def test_a_variable_named_torch_is_a_value_not_a_module() -> None:
    formula = compile_formula("torch.T + torch", variables=["torch"])
    assert formula.names == frozenset({"torch"})
    with pytest.raises(SpecError, match=r"method call torch\.save\(\.\.\.\) is not allowed"):
        compile_formula("torch.save(torch, 'f')", variables=["torch"])


SAFE = [
    "mean((X @ W + b - Y) ** 2)",
    "grad * 2 * X.mT @ (X @ W + b - Y) / N",
    "torch.sin(X) + max(X, dim=0).values + einsum('ij->j', X)",
    "X[..., None, 1:].shape[0] * pi",
]


@pytest.mark.parametrize("source", SAFE)
def test_compiled_code_names_only_whitelisted_things(source: str) -> None:
    variables = ["X", "W", "b", "Y", "N", "grad"]
    formula = compile_formula(source, variables=variables)
    code = formula._code
    allowed = {*variables, *CONSTANTS, *ATTRIBUTES, *(f"__fn_{name}" for name in FUNCTIONS)}
    assert set(code.co_names) <= allowed
    assert not code.co_consts or all(
        isinstance(c, (int, float, str, tuple, type(None), type(...))) for c in code.co_consts
    )


def test_evaluation_sees_no_builtins_but_the_import_torch_needs() -> None:
    namespace = formula_module._NAMESPACE
    assert set(namespace["__builtins__"]) == {"__import__"}
    assert "torch" not in namespace
    assert set(namespace) == {"__builtins__", *CONSTANTS, *(f"__fn_{f}" for f in FUNCTIONS)}
    formula = compile_formula("clamp(x, max=1.0)", variables=["x"])  # torch imports lazily here
    torch.testing.assert_close(formula(x=torch.tensor(2.0)), torch.tensor(1.0))
