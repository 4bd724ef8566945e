"""An example's memory: freed as the example ends, and kept in the C heap between its
evaluations rather than handed back to the system and faulted in again (``checks/heap``)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import subprocess
import sys
import textwrap
import weakref

import pytest
import torch

from harness import CHECKS, Input, Spec
from harness.checks import heap
from harness.checks.case import Case
from harness.errors import Skipped
from harness.spec.examples import Example


def _cube(x: torch.Tensor) -> torch.Tensor:
    return x**3


CUBE = Spec(name="cube", forward=_cube, inputs={"x": Input(["n"])},
            backward={"x": lambda grad, x: grad * 3 * x**2}, reference=_cube,
            dims={"n": (1, 2000)})


@pytest.mark.parametrize("check", [name for name in CHECKS if name != "devices"])
@pytest.mark.parametrize("size", [20, 2000])  # every partial derivative; directional ones
def test_an_examples_tensors_are_freed_as_it_ends(check, size):
    """No cycle through a case: with the cyclic collector off, dropping the case after
    a check frees its inputs, outputs and the oracle's float64 point at once."""
    x = torch.linspace(1, 2, size, dtype=torch.float64)
    example = Example(dims={"n": size}, values={"x": x}, cotangent_seed=1)
    gc.collect()
    gc.disable()
    try:
        case = Case(CUBE, example, "cpu", torch.float32)
        # undefined skips (one output: nothing to leave out); its case is freed all the same
        with contextlib.suppress(Skipped):
            assert CHECKS[check].run(case) == []
        tensors = [weakref.ref(case.values["x"]), weakref.ref(case.outputs.tensors[0]),
                   weakref.ref(case.oracle.point["x"])]
        del case
        assert [ref() is None for ref in tensors] == [True, True, True]
    finally:
        gc.enable()


# A fresh process's glibc mmaps a 4 MiB block (above its 128 KiB threshold, which the
# process's own frees have not raised that far); once a case of 10^5 float64 elements
# has kept its blocks, the heap serves it, as it serves the tensors of every evaluation.
# mallinfo2's hblkhd counts the mmapped bytes.
_FOUR_MIB = textwrap.dedent("""
    import ctypes, sys, torch
    from harness.checks import heap

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    if sys.argv[1] == "kept":
        heap.keep_blocks_of(800_000)
    before = libc.mallinfo2().hblkhd
    block = torch.empty(4 << 20, dtype=torch.uint8)
    print(libc.mallinfo2().hblkhd - before)
""")


def _mmapped_bytes(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _FOUR_MIB, mode], capture_output=True,
                          text=True, check=True, timeout=120)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not heap.GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="glibc's adaptive mmap threshold, read with mallinfo2 (glibc 2.33)")
def test_a_case_keeps_its_blocks_in_the_heap():
    """Where glibc would mmap a block, and so unmap it as it is freed and fault it in
    afresh at the next evaluation, the kept block puts it in the heap.
    ``benchmarks/heap_faults.py`` measures what that saves."""
    plain = _mmapped_bytes("plain")
    if plain < 4 << 20:  # something at import raised the threshold: nothing to show here
        pytest.skip(f"glibc, left alone, mapped {plain} bytes of a 4 MiB block")
    assert _mmapped_bytes("kept") == 0
