"""Each private API the harness uses (harness/_compat.py) still does what the harness needs.

A release of pytest, Hypothesis or torch that moves or changes one fails here, by
name, rather than somewhere deep in a check.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import _compat


def test_message_repr_puts_the_first_line_in_the_crash_message() -> None:
    shown = _compat.message_repr("Gradient of 'x' is wrong\n\ndetails", "specs/a.toml", 3)
    assert shown.reprcrash.message == "Gradient of 'x' is wrong"
    assert (shown.reprcrash.path, shown.reprcrash.lineno) == ("specs/a.toml", 3)
    assert "details" in str(shown)


def test_the_database_key_is_the_one_given_uses(tmp_path) -> None:
    from hypothesis.database import DirectoryBasedExampleDatabase

    database = DirectoryBasedExampleDatabase(tmp_path)

    @settings(database=database, max_examples=5)
    @given(st.integers())
    def fails(value: int) -> None:
        raise ValueError(value)

    _compat.set_database_key(fails, b"harness-key")
    with pytest.raises(ValueError):
        fails()
    assert list(database.fetch(b"harness-key"))  # the failure was saved under our key


def test_assert_close_tolerances_are_torchs_defaults() -> None:
    assert _compat.assert_close_tolerances(torch.float64) == (1e-7, 1e-7)
    assert _compat.assert_close_tolerances(torch.float32) == (1.3e-6, 1e-5)


def test_a_dispatch_mode_sees_every_aten_op() -> None:
    seen = []

    class Spy(_compat.dispatch_mode()):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    x = torch.ones(3, dtype=torch.float64)
    with Spy():
        torch.softmax(x * 2, 0)
    assert seen == ["mul", "_softmax"]


def test_tree_map_reaches_the_tensors_of_nested_results() -> None:
    doubled = _compat.tree_map(lambda t: t * 2, (torch.ones(1), [torch.ones(2)]))
    assert doubled[1][0].tolist() == [2.0, 2.0]
    summed = _compat.tree_map(lambda a, b: a + b, (torch.ones(1),), (torch.ones(1),))
    assert summed[0].tolist() == [2.0]


def test_decompositions_decompose_softmax_and_its_backward() -> None:
    table = _compat.decompositions()
    assert torch.ops.aten._softmax.default in table
    assert torch.ops.aten._softmax_backward_data.default in table
    x = torch.randn(4, dtype=torch.float64)
    decomposed = table[torch.ops.aten._softmax.default](x, 0, False)
    assert torch.allclose(decomposed, torch.softmax(x, 0))


def test_mutable_ops_and_zero_tensors_are_recognised() -> None:
    assert _compat.is_mutable(torch.ops.aten.add_.Tensor)
    assert not _compat.is_mutable(torch.ops.aten.add.Tensor)
    assert not _compat.is_zero_tensor(torch.zeros(2))
    assert _compat.is_zero_tensor(torch.ops.aten._efficientzerotensor([2]))


def test_the_arguments_an_op_writes_are_found() -> None:
    x, y, out = torch.zeros(2), torch.ones(2), torch.empty(2)
    assert _compat.written_arguments(torch.ops.aten.add_.Tensor, (x, y), {})[0] is x
    assert _compat.written_arguments(torch.ops.aten.add.out, (x, y), {"out": out})[0] is out
    assert _compat.written_arguments(torch.ops.aten.add.Tensor, (x, y), {}) == []


def test_function_class_finds_a_custom_functions_class() -> None:
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    x = torch.ones(2, requires_grad=True)
    assert _compat.function_class(Double.apply(x).grad_fn) is Double
    assert _compat.function_class((x * 2).grad_fn) is None


def test_expected_gradient_is_what_the_engine_checks_against() -> None:
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    y = x.sin()
    leaf, nr = y.grad_fn.next_functions[0]
    assert _compat.expected_gradient(leaf, nr) == ((2, 3), torch.float64, x.device)
    inner, nr = (y * 2).grad_fn.next_functions[0]
    assert _compat.expected_gradient(inner, nr) == ((2, 3), torch.float64, x.device)
