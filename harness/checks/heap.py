"""Keeping the C heap's freed blocks for the next evaluation, where the C library is glibc.

An example evaluates the forward a dozen times or more, each evaluation allocating and
freeing tensors of the input's size. glibc hands the free memory at the top of its heap
back to the system once it exceeds the trim threshold, twice the largest block the
process has freed from an mmap (128 KiB at start), and the next evaluation faults the
pages in again: at 10^5 float64 elements, 5000-7000 page faults an example and 13-19x
one forward + backward where 10x is the target. Freeing one block of some size moves the
threshold as the process's own frees of such blocks would; this does not call
``mallopt``, which would turn glibc's adaptation off for good. After that, smaller
blocks come from the heap and free heap of up to twice that size is kept.
"""

from __future__ import annotations

import os

import torch

# glibc's mmap threshold at start (DEFAULT_MMAP_THRESHOLD): a block below it comes from the
# heap, and freeing it moves nothing.
GLIBC_SMALLEST = 128 * 2**10
# glibc's ceiling on its adaptive mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit):
# blocks above it are mmapped whatever was freed before.
GLIBC_LARGEST = 32 * 2**20
# An evaluation frees its temporaries together, several of the input's size (tanh(x) x +
# sin(x) frees four): the block is this many tensors, and the heap keeps twice the block.
TENSORS_KEPT = 8


def _is_glibc() -> bool:
    """Whether this process runs on glibc (as it reports itself, not the executable)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or a C library without it
        return False


GLIBC = _is_glibc()
_kept = GLIBC_SMALLEST  # the largest block freed here so far


def keep_blocks_of(tensor_bytes: int) -> None:
    """Let glibc keep the freed blocks of tensors of ``tensor_bytes`` between evaluations
    (once per size: a larger one raises it again; no-op on other C libraries).

    The block is allocated and freed untouched, so no page of it is faulted in.

    >>> keep_blocks_of(800_000)  # a tensor of 10^5 float64 elements
    """
    global _kept
    size = min(TENSORS_KEPT * tensor_bytes, GLIBC_LARGEST)
    if not GLIBC or size <= _kept:
        return
    torch.empty(size, dtype=torch.uint8)  # freed at once: glibc's threshold moves to it
    _kept = size
