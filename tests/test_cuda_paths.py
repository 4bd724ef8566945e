"""The CUDA code paths that a machine without a GPU can still run: which GPU each
pytest-xdist worker takes, the TF32 flags around a comparison on CUDA, and the
synchronisation of the benchmarks' timers.

torch.cuda is patched where a GPU would be asked (``is_available``, ``device_count``,
``set_device``, ``synchronize``); the TF32 flags are plain flags, present in CPU builds.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from harness import _compat, plugin
from harness.bench import timing
from harness.plugin_options import OPTIONS
from harness.verify import _precise

NEW_FLAGS = hasattr(torch.backends.cudnn, "conv")  # torch >= 2.9: fp32_precision flags


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)``: torch sees n GPUs (0: CUDA absent); ``set_device`` calls are recorded."""
    chosen: list[int] = []

    def visible(count: int) -> list[int]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        return chosen

    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    return visible


# --- one GPU per pytest-xdist worker -------------------------------------------------------

def test_worker_i_takes_gpu_i_mod_count(gpus) -> None:
    gpus(2)
    assert [plugin.worker_gpu(f"gw{i}") for i in range(4)] == [0, 1, 0, 1]
    gpus(3)
    assert [plugin.worker_gpu(f"gw{i}") for i in range(4)] == [0, 1, 2, 0]


@pytest.mark.parametrize("workerid", [None, "", "master", "gw", "gwx1"])
def test_a_controller_or_a_run_without_xdist_keeps_the_current_gpu(gpus, workerid) -> None:
    gpus(2)
    assert plugin.worker_gpu(workerid) is None


def test_without_cuda_no_worker_takes_a_gpu(gpus) -> None:
    gpus(0)
    assert plugin.worker_gpu("gw1") is None


def _session(devices: tuple[str, ...], workerinput: dict | None) -> SimpleNamespace:
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[OPTIONS] = SimpleNamespace(devices=devices)
    if workerinput is not None:
        config.workerinput = workerinput
    return SimpleNamespace(config=config)


def test_each_worker_makes_its_gpu_the_current_device_at_session_start(gpus, monkeypatch):
    chosen = gpus(2)
    shares = []
    monkeypatch.setattr(plugin, "_share_the_cores", shares.append)
    for i in range(4):
        workerinput = {"workerid": f"gw{i}", "workercount": 4}
        plugin.pytest_sessionstart(_session(("cpu", "cuda"), workerinput))
    assert chosen == [0, 1, 0, 1]
    assert shares == [4, 4, 4, 4]  # and each still takes its share of the cores


@pytest.mark.parametrize(("devices", "workerinput"), [
    (("cpu", "cuda"), None),  # no xdist: the default device
    (("cpu",), {"workerid": "gw1", "workercount": 2}),  # a worker with nothing on CUDA
], ids=["no-xdist", "cpu-only"])
def test_no_gpu_is_taken_outside_a_worker_or_without_cuda_items(gpus, monkeypatch, devices,
                                                                 workerinput) -> None:
    chosen = gpus(2)
    monkeypatch.setattr(plugin, "_share_the_cores", lambda workers: None)
    plugin.pytest_sessionstart(_session(devices, workerinput))
    assert chosen == []


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
