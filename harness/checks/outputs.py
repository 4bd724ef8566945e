"""Which outputs a wrong gradient comes through, for a forward with several.

A VJP mixes every output's cotangent. Where a check fails on such a forward, it runs
again with each output's cotangent alone (the others zero): an input whose
gradient fails for some outputs but not all is named with them ("Gradient of 'x'
through output 1 is wrong"), which says where in the backward to look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from harness.checks.case import Case
from harness.errors import Discarded, Fault, Skipped
from harness.report import Failure


def through_outputs(
    check: Callable[[Case], list[Failure]], case: Case, failures: list[Failure]
) -> list[Failure]:
    """``failures``, each gradient failure naming the outputs it comes through."""
    if not failures or len(case.cotangents) < 2:
        return failures
    failing: dict[str, list[int]] = {}
    for k, index in enumerate(case.outputs.differentiable):
        try:
            found = check(case.only_output(k))
        except (Discarded, Fault, Skipped):
            continue  # this output alone cannot be judged here: say nothing of it
        for failure in found:
            if failure.input is not None:
                failing.setdefault(failure.input, []).append(index)
    every = len(case.outputs.differentiable)
    return [_named(failure, failing.get(failure.input or "", []), every)
            for failure in failures]


def _named(failure: Failure, outputs: list[int], every: int) -> Failure:
    plain = f"Gradient of {failure.input!r} is wrong"
    if failure.summary != plain or not outputs or len(outputs) == every:
        return failure
    which = f"output {outputs[0]}" if len(outputs) == 1 else \
        "outputs " + ", ".join(map(str, outputs))
    return replace(failure, summary=f"Gradient of {failure.input!r} through {which} is wrong")
