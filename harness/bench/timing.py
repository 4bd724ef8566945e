"""Timing calls on a device, and turning running out of memory into a skip.

``harness.bench`` times a spec's backward with these, and ``benchmarks/`` times the
oracle against ``torch.autograd.gradcheck`` with ``time_calls``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from harness.errors import BenchmarkSkipped

__all__ = ["is_out_of_memory", "memory_guard", "synchronize", "time_calls"]


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously); nothing on CPU.

    ``cuda`` is the current device, ``cuda:1`` that one: a timer that waited on
    another GPU than the one the work was queued on would time the launch alone.

    >>> synchronize("cpu")
    """
    if _is_cuda(device):
        torch.cuda.synchronize(device)


def _is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def is_out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is an allocation failure.

    >>> is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    True
    >>> is_out_of_memory(ValueError("shapes differ"))
    False
    """
    while error is not None:
        if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
            return True
        text = str(error).lower()
        if isinstance(error, RuntimeError) and (
            "out of memory" in text or "can't allocate memory" in text
        ):
            return True
        error = error.__cause__
    return False


@contextmanager
def memory_guard(what: str, device: str) -> Iterator[None]:
    """Turn an out-of-memory error inside the block into ``BenchmarkSkipped``."""
    reason = None
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        reason = f"out of memory {what} on {device}: {first_line}"
    if _is_cuda(device):  # after the except block: the failed frames are released
        torch.cuda.empty_cache()
    if reason is not None:
        raise BenchmarkSkipped(reason)


def time_calls(
    fns: Sequence[Callable[[], Any]], *, min_rounds: int = 5, min_time: float = 0.1,
    max_rounds: int = 100_000,
) -> list[list[float]]:
    """Seconds of each call of each of ``fns``, called in turn each round (so that a
    change in the machine's load moves all alike), for at least ``min_rounds`` rounds and
    ``min_time`` seconds. Each ``fn`` synchronises its device (``BackwardRun``'s do).

    >>> [len(t) for t in time_calls([lambda: 1, lambda: 2], min_rounds=3, min_time=0.0)]
    [3, 3]
    """
    times: list[list[float]] = [[] for _ in fns]
    started = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (
        time.perf_counter() - started < min_time and rounds < max_rounds
    ):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
        rounds += 1
    return times
