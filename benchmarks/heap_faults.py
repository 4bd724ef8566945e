"""What the allocator costs one example at 10^5 elements, run back to back as Hypothesis
runs them: the wall time and the page faults of each ``finite_difference`` example.

glibc hands free memory above its trim threshold back to the system and faults it in
again when the next evaluation asks for it; the threshold adapts to the largest block the
process has freed, and ``harness/checks/heap.py`` frees one block of a case's size so that
it is kept. Compare with glibc told to keep everything:

    python benchmarks/heap_faults.py
    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864 \\
        python benchmarks/heap_faults.py

(Linux only: ``resource`` counts the faults.)
"""

from __future__ import annotations

import resource
import statistics
import time

import torch
from test_oracle import LARGE, SPEC, _example

from harness import CHECKS
from harness.checks.case import Case

ROUNDS = 5
EXAMPLES = 40


def main() -> None:
    example = _example(LARGE)
    check = CHECKS["finite_difference"]

    def one() -> None:
        check.run(Case(SPEC, example, "cpu", torch.float64))

    one()
    seconds, faults = [], []
    for _ in range(ROUNDS):
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(EXAMPLES):
            one()
        seconds.append((time.perf_counter() - start) / EXAMPLES)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / EXAMPLES)
    print(f"finite_difference at {LARGE:,} elements, {EXAMPLES} examples back to back, "
          f"{ROUNDS} rounds: {statistics.median(seconds) * 1e3:.2f} ms an example "
          f"(median; {min(seconds) * 1e3:.2f}-{max(seconds) * 1e3:.2f}), "
          f"{statistics.median(faults):.0f} page faults an example")


if __name__ == "__main__":
    main()
