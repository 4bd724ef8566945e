"""The CUDA code paths that a machine without a GPU can still run: the TF32 flags around
a comparison on CUDA, and the synchronisation of the benchmarks' timers.

torch.cuda is patched where a GPU would be asked (``synchronize``); the TF32 flags are
plain flags, present in CPU builds.
"""

from __future__ import annotations

import pytest
import torch

from harness import _compat
from harness.bench import timing
from harness.verify import _precise

NEW_FLAGS = hasattr(torch.backends.cudnn, "conv")  # torch >= 2.9: fp32_precision flags


# --- TF32 off while comparing on CUDA ---------------------------------------------------------

def _flags() -> tuple:
    backends = torch.backends
    if not NEW_FLAGS:
        return backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    return (backends.fp32_precision, backends.cuda.matmul.fp32_precision,
            backends.cudnn.fp32_precision, backends.cudnn.conv.fp32_precision,
            backends.cudnn.rnn.fp32_precision)


@pytest.fixture
def tf32_flags():
    """The process's TF32 flags, restored after the test (through the new API where it
    exists: the old one raises once the new one is set)."""
    saved = _flags()
    yield
    backends = torch.backends
    if NEW_FLAGS:
        (backends.fp32_precision, backends.cuda.matmul.fp32_precision,
         backends.cudnn.fp32_precision, backends.cudnn.conv.fp32_precision,
         backends.cudnn.rnn.fp32_precision) = saved
    else:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = saved
    assert _flags() == saved


def _set_tf32(how: str) -> None:
    backends = torch.backends
    if how == "old API":
        backends.cuda.matmul.allow_tf32 = True
        backends.cudnn.allow_tf32 = True
    elif how == "new API":  # the way torch >= 2.9 documents
        backends.fp32_precision = "tf32"
    elif how == "matmul precision":
        torch.set_float32_matmul_precision("high")


@pytest.mark.skipif(not NEW_FLAGS, reason="torch < 2.9 has no fp32_precision flags")
@pytest.mark.parametrize("how", ["default", "old API", "new API", "matmul precision"])
def test_tf32_is_off_inside_and_restored_after(tf32_flags, how) -> None:
    _set_tf32(how)
    before = _flags()
    with _precise("cuda"):
        backends = torch.backends
        assert (backends.cuda.matmul.fp32_precision, backends.cudnn.conv.fp32_precision,
                backends.cudnn.rnn.fp32_precision) == ("ieee", "ieee", "ieee")
    assert _flags() == before


@pytest.mark.skipif(NEW_FLAGS, reason="torch >= 2.9: the fp32_precision flags are used")
def test_tf32_is_off_inside_and_restored_after_with_the_old_flags(tf32_flags) -> None:
    _set_tf32("old API")
    with _compat.no_tf32():
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert _flags() == (True, True)


def test_on_the_cpu_the_flags_are_left_alone(tf32_flags) -> None:
    _set_tf32("new API")
    before = _flags()
    with _precise("cpu"):
        assert _flags() == before


def test_tf32_off_works_after_torch_froze_its_global_flags(tf32_flags, monkeypatch) -> None:
    """torch's own test suite calls disable_global_flags(), after which setting cuDNN's
    flags directly raises; undone after the test (the flag it sets is a global of the
    module that torch.backends wraps)."""
    module_globals = torch.backends.flags_frozen.__globals__
    monkeypatch.setitem(module_globals, "__allow_nonbracketed_mutation_flag", False)
    assert torch.backends.flags_frozen()
    with _precise("cuda"):
        pass


# --- the benchmarks wait for the GPU they time ------------------------------------------------

@pytest.fixture
def cuda_calls(monkeypatch) -> list[tuple[str, object]]:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(
        ("synchronize", device)))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(("empty_cache", None)))
    return calls


def test_synchronize_waits_for_the_device_named(cuda_calls) -> None:
    for device in ("cpu", "cuda", "cuda:1"):
        timing.synchronize(device)
    assert cuda_calls == [("synchronize", "cuda"), ("synchronize", "cuda:1")]


def test_the_memory_guard_empties_the_cache_of_any_cuda_device(cuda_calls) -> None:
    for device in ("cpu", "cuda", "cuda:1"):
        with timing.memory_guard("timing", device):
            pass
    assert cuda_calls == [("empty_cache", None), ("empty_cache", None)]
