"""Every use of a private or undocumented API of pytest, Hypothesis or torch, and of a torch
API that a release replaced, each with why.

Kept in one place so that a new release that moves one breaks one module, and so
that each use is a decision written down; ``tests/test_compat.py`` pins each one.
torch is imported only by the functions that need it (``pytest --help`` imports
the plugin, which imports this module).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import (  # private: the only way to build a failure's repr
    ExceptionChainRepr,
    ReprEntryNative,
    ReprFileLocation,
    ReprTraceback,
)


@contextmanager
def hypothesis_statistics(item: pytest.Item) -> Iterator[None]:
    """Let ``--hypothesis-show-statistics`` report a harness item.

    Hypothesis' pytest plugin collects statistics only around items that are
    ``@given`` functions: it sets ``hypothesis.statistics.collector`` (undocumented)
    around the call and prints ``item.hypothesis_statistics`` (an attribute its
    ``pytest_runtest_makereport`` reads) in its terminal summary. A harness item
    runs ``@given`` tests inside ``verify``, so it sets the same two itself. Without
    them (an older or newer Hypothesis) the items run unreported, nothing else.
    """
    try:
        from hypothesis.statistics import collector, describe_statistics
    except ImportError:  # pragma: no cover - a Hypothesis without this module
        yield
        return

    def note(stats: dict) -> None:
        stats["nodeid"] = item.nodeid
        item.hypothesis_statistics = describe_statistics(stats)

    with collector.with_value(note):
        yield


def matches_python_files(path: Path, patterns: list[str]) -> bool:
    """Whether pytest collects ``path`` as a test module by its ``python_files`` patterns.

    Mirrors ``_pytest.python.path_matches_patterns`` (private): a pattern without a
    path separator matches the file name, one with a separator the whole path.

    >>> matches_python_files(Path("tests/test_a.py"), ["test_*.py", "*_test.py"])
    True
    >>> matches_python_files(Path("specs/nn.py"), ["test_*.py", "*_test.py"])
    False
    """
    for pattern in patterns:
        target = str(path) if os.sep in pattern or "/" in pattern else path.name
        if fnmatch.fnmatch(target, pattern):
            return True
    return False


def message_repr(text: str, path: str | None, line: int | None) -> ExceptionChainRepr:
    """A failure shown as its message alone; the first line is the crash message.

    Built from pytest's own repr classes (``_pytest._code.code``, private) so that
    pytest-xdist and ``--junitxml`` carry the first line as the failure's message.
    """
    lines = text.splitlines() or [""]
    crash = ReprFileLocation(str(path), line or 0, lines[0])
    traceback = ReprTraceback([ReprEntryNative([f"{line}\n" for line in lines])], None, "native")
    return ExceptionChainRepr([(traceback, crash, None)])


def set_database_key(test: Callable, key: bytes) -> None:
    """One Hypothesis database entry per spec, check, device and dtype, not one per
    wrapper function: ``_hypothesis_internal_database_key`` is what ``@given`` reads
    (undocumented; without it the key is the digest of the wrapper, shared by all)."""
    test._hypothesis_internal_database_key = key  # type: ignore[attr-defined]


def assert_close_tolerances(dtype) -> tuple[float, float]:
    """``torch.testing.assert_close``'s default (rtol, atol) for ``dtype``: public
    behaviour, but the table lives in ``torch.testing._comparison`` (private)."""
    from torch.testing._comparison import default_tolerances

    return default_tolerances(dtype)


def dispatch_mode() -> type:
    """``TorchDispatchMode``: the base of a mode that sees every aten op (private module
    ``torch.utils._python_dispatch``; how torch's own FakeTensor and CrossRef modes work)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


def tree_map(fn: Callable, tree: Any, *rests: Any) -> Any:
    """``fn`` over the tensors of an op's (nested) result: ``torch.utils._pytree``."""
    from torch.utils._pytree import tree_map as map_tree

    return map_tree(fn, tree, *rests)


def decompositions() -> dict:
    """aten op -> its decomposition into smaller aten ops: ``torch._decomp`` (private;
    the table torch.compile and torch.export decompose with)."""
    from torch._decomp import decomposition_table

    return decomposition_table


def is_mutable(op) -> bool:
    """Whether an aten op writes one of its arguments (``op._schema``, private)."""
    return bool(op._schema.is_mutable)


def written_arguments(op, args, kwargs) -> list:
    """The arguments an aten op writes (``self`` of ``add_``, ``out`` of ``add.out``), from
    its schema's alias annotations (``op._schema``, private)."""
    written = []
    for position, argument in enumerate(op._schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        if argument.name in kwargs:
            written.append(kwargs[argument.name])
        elif position < len(args):
            written.append(args[position])
    return written


def is_zero_tensor(value) -> bool:
    """A ZeroTensor (forward AD's zero tangents): no storage, and arithmetic on one
    crashes (``Tensor._is_zerotensor``, private)."""
    return bool(value._is_zerotensor())


@contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off for CUDA matrix products and cuDNN convolutions and RNNs inside the block;
    the flags are restored exactly after.

    torch 2.9 replaced the ``allow_tf32`` flags by per-backend ``fp32_precision`` ones,
    and reading an old flag raises once the new ones have been set (a user's
    ``torch.backends.fp32_precision = "tf32"``); setting the old ones also rewrites the
    new. Where the new flags exist only they are touched ("ieee" inside the block);
    before torch 2.9, the old ones (cuDNN's through its ``flags`` context manager, which
    works after ``torch.backends.disable_global_flags()``, as torch's own tests call it).
    Flags only: it runs on a torch without CUDA too.

    >>> import torch
    >>> with no_tf32():
    ...     torch.backends.cuda.matmul.fp32_precision
    'ieee'
    """
    import torch

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(cudnn, "conv"):  # torch >= 2.9: the fp32_precision flags
        flags = (matmul, cudnn.conv, cudnn.rnn)
        saved = [flag.fp32_precision for flag in flags]
        try:
            for flag in flags:
                flag.fp32_precision = "ieee"
            yield
        finally:
            for flag, value in zip(flags, saved):
                flag.fp32_precision = value
        return
    saved_matmul = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                         benchmark_limit=cudnn.benchmark_limit,
                         deterministic=cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        matmul.allow_tf32 = saved_matmul


def function_class(node) -> type | None:
    """The custom ``autograd.Function`` class behind a backward graph node, or None for a
    built-in op's node: ``BackwardCFunction._forward_cls`` (private; how torch's own
    ``BackwardCFunction.apply`` finds the user's ``backward``)."""
    from torch.autograd.function import BackwardCFunction

    return node._forward_cls if isinstance(node, BackwardCFunction) else None


def expected_gradient(node, input_nr: int) -> tuple[tuple[int, ...], object, object] | None:
    """(shape, dtype, device) that graph node ``node`` expects for its input ``input_nr``:
    a leaf's own (``AccumulateGrad.variable``), else ``Node._input_metadata`` (private: the
    metadata autograd's engine validates a gradient against, and silently casts or sums
    a wrong one to)."""
    variable = getattr(node, "variable", None)
    if variable is not None:
        return tuple(variable.shape), variable.dtype, variable.device
    metadata = getattr(node, "_input_metadata", None)
    if metadata is None or input_nr >= len(metadata):
        return None
    entry = metadata[input_nr]
    return tuple(entry.shape), entry.dtype, entry.device
