"""Report, Failure, and the failure message (shaped like torch.testing.assert_close's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class Failure:
    """One thing found wrong, with all the message needs.

    ``summary`` is what is wrong ("Gradient of 'W' is wrong"), ``verdict`` which
    gradient source is the odd one out; ``details`` are the lines under the
    first (mismatch figures, the table of worst elements).
    """

    spec: str
    check: str
    device: str
    dtype: str
    summary: str
    verdict: str = ""
    details: tuple[str, ...] = ()
    example: str = ""
    explicit: int | None = None
    location: str = ""
    reproduce: str = ""
    input: str | None = None
    cotangent: str = ""  # the cotangent v the gradients were taken with (grad in formulas)

    @property
    def headline(self) -> str:
        where = f"in spec {self.spec!r} [{self.check}, {self.device}, {self.dtype}]"
        return f"{self.summary} {where}" + (f": {self.verdict}" if self.verdict else "")

    def with_reproduce(self, command: str) -> Failure:
        return replace(self, reproduce=command)


def message(failure: Failure) -> str:
    """The failure message: a first line that stands alone, then the evidence.

    >>> print(message(Failure("square", "analytic", "cpu", "float64",
    ...       "Gradient of 'x' is wrong", "the analytic formula is likely wrong",
    ...       example="x=[1.0]", location="specs/a.toml:1")))
    Gradient of 'x' is wrong in spec 'square' [analytic, cpu, float64]: the analytic formula is likely wrong
    <BLANKLINE>
    Minimal failing example (after shrinking): x=[1.0]
    Spec: specs/a.toml:1
    """  # noqa: E501
    lines = [failure.headline, ""]
    lines += failure.details
    if failure.example:
        label = (
            f"Failing example (examples[{failure.explicit}] of the spec)"
            if failure.explicit is not None
            else "Minimal failing example (after shrinking)"
        )
        lines.append(f"{label}: {failure.example}")
    if failure.cotangent:
        lines.append(f"Cotangent (grad): {failure.cotangent}")
    if failure.location:
        lines.append(f"Spec: {failure.location}")
    if failure.reproduce:
        lines.append(f"Reproduce: {failure.reproduce}")
    return "\n".join(lines).rstrip("\n")


def table(
    columns: Mapping[str, torch.Tensor], indices: Sequence[tuple[int, ...]]
) -> list[str]:
    """Rows of the named gradient sources at ``indices``, aligned under a header."""
    header = ["index", *columns]
    rows = [header]
    for index in indices:
        rows.append([str(index), *(_cell(values, index) for values in columns.values())])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["   " + "   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def _cell(values: torch.Tensor, index: tuple[int, ...]) -> str:
    """The value at ``index``; a complex tensor's part there (the index of its real view,
    the last entry 0 for the real part, 1 for the imaginary)."""
    values = values.detach().cpu()
    if values.is_complex():
        values = torch.view_as_real(values.resolve_conj())
    return f"{float(values[index]):.8g}"


@dataclass
class Report:
    """What ``verify`` found: ``passed`` unless some check failed; ``str()`` explains."""

    failures: list[Failure] = field(default_factory=list)
    examples: int = 0
    discarded: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    discard_reasons: dict[str, int] = field(default_factory=dict)  # why, how many times

    @property
    def passed(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        if self.failures:
            return "\n\n".join(message(failure) for failure in self.failures)
        skipped = "".join(f"; {check} skipped: {why}" for check, why in self.skipped.items())
        why = "".join(f"\n   {n} x {reason}" for reason, n in self.discard_reasons.items())
        return (f"passed: {self.examples} examples, {self.discarded} discarded (no "
                f"verdict possible there){skipped}" + (f"; why:{why}" if why else ""))
