"""What a spec can see: plant relative errors in its gradient, report the smallest caught.

``planted(spec, r, mode)`` is the spec with its forward wrapped in an identity
``autograd.Function`` whose backward is wrong by a relative ``r``:

- ``"one"``: the cotangent of one output element is scaled by (1 + r): the
  element of largest |value| at the point differentiated (the first in flattened
  order among ties), so the error lands in the gradient wherever that element
  depends on the inputs;
- ``"all"``: the whole cotangent is scaled by (1 + r), so every gradient element
  is off by the same relative r.

The forward values are untouched (the wrapper is the identity, and it steps
aside where no gradient is recorded: finite differences, forward-mode AD and the
Taylor test's evaluations see the true function), so every check that compares
reverse-mode AD against something else is put to the test. ``power(spec)`` runs
each applicable check on planted specs for r = 1e-2 ... 1e-8 with a fixed seed
and reports, per check and dtype, the smallest r caught — r and every larger one —
and whether r = 0, the right gradient, passes (it must).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import Phase, settings

from harness.checks import CHECKS
from harness.spec import Spec
from harness.verify import verify

ERRORS: tuple[float, ...] = tuple(10.0**-k for k in range(2, 9))
MODES: tuple[str, ...] = ("one", "all")
# The checks that compare reverse-mode AD with an independent source. gradgradcheck
# (the planted backward is consistent with its own derivative) and devices (both
# devices carry the plant) cannot see a planted error.
POWER_CHECKS: tuple[str, ...] = (
    "analytic", "reference", "finite_difference", "gradcheck", "taylor", "forward_mode",
)
DTYPES: tuple[str, ...] = ("float64", "float32")
MAX_EXAMPLES = 5


class _Plant(torch.autograd.Function):
    """The identity forward; backward scales one element's cotangent (or all) by 1 + r."""

    @staticmethod
    def forward(ctx, output: torch.Tensor, r: float, one: bool) -> torch.Tensor:
        ctx.r = r
        ctx.index = None
        if one and output.numel():
            ctx.index = int(output.detach().abs().reshape(-1).argmax())
        return output.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.index is None:
            return grad * (1 + ctx.r), None, None
        grad = grad.contiguous().clone()
        flat = grad.view(-1)
        flat[ctx.index] = flat[ctx.index] * (1 + ctx.r)
        return grad, None, None

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor, *_: Any) -> torch.Tensor:
        return tangent.clone()


def plant(output: Any, r: float, mode: str = "one") -> Any:
    """``output`` with a planted backward error (see the module docstring).

    A tuple or list output gets the plant on its first floating tensor ("one") or
    on every floating tensor ("all"). Where no gradient is recorded the output is
    returned as it is.

    >>> x = torch.tensor([1.0, -3.0, 2.0], dtype=torch.float64, requires_grad=True)
    >>> plant(x * 2, 0.5, "one").sum().backward()
    >>> x.grad.tolist()
    [2.0, 3.0, 2.0]
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    if isinstance(output, (tuple, list)):
        planted_outputs, done = [], False
        for item in output:
            if _differentiated(item) and not (done and mode == "one"):
                planted_outputs.append(_Plant.apply(item, r, mode == "one"))
                done = True
            else:
                planted_outputs.append(item)
        return type(output)(planted_outputs)
    if not _differentiated(output):
        return output
    return _Plant.apply(output, r, mode == "one")


def _differentiated(value: Any) -> bool:
    return (isinstance(value, torch.Tensor)
            and (value.is_floating_point() or value.is_complex())
            and value.requires_grad and torch.is_grad_enabled())


class _PlantedForward:
    """A spec's forward (a keyword call) with the plant applied to what it returns."""

    def __init__(self, inner: Any, r: float, mode: str):
        self.inner, self.r, self.mode = inner, r, mode
        self.role = getattr(inner, "role", "forward")
        self.names = getattr(inner, "names", ())
        inner_fn = getattr(inner, "fn", None)
        if inner_fn is not None:
            self.fn = lambda **values: plant(inner_fn(**values), r, mode)

    def __call__(self, values: Mapping[str, Any]) -> Any:
        return plant(self.inner(values), self.r, self.mode)

    def __repr__(self) -> str:
        return f"<{self.role} with a planted error r={self.r:g} ({self.mode})>"


def planted(spec: Spec, r: float, mode: str = "one") -> Spec:
    """A copy of ``spec`` whose autograd gradient is wrong by a relative ``r``.

    >>> from harness import Input
    >>> square = Spec(forward=lambda x: x**2, inputs={"x": Input(["n"])}, name="square")
    >>> verify(planted(square, 1e-3), checks=["finite_difference"], seed=0).passed
    False
    >>> verify(planted(square, 0.0), checks=["finite_difference"], seed=0).passed
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    forward = _PlantedForward(spec.forward, r, mode)
    if dataclasses.is_dataclass(spec):
        return dataclasses.replace(spec, forward=forward)
    copied = copy.copy(spec)
    copied.forward = forward
    return copied


@dataclass(frozen=True)
class Power:
    """One spec × check × dtype: the smallest planted r caught per mode.

    ``smallest[mode]`` is the smallest r of ``errors`` caught together with
    every larger one (None: not even the largest); ``clean`` says whether the
    right gradient (r = 0) passed; ``skipped`` why the check did not run.
    """

    spec: str
    check: str
    dtype: str
    smallest: dict[str, float | None] = field(default_factory=dict)
    clean: bool = True
    skipped: str = ""
    clean_headline: str = ""


def applicable(spec: Spec, dtype: str, checks: Sequence[str] | None = None) -> list[str]:
    """The power checks that run for ``spec`` in ``dtype`` on the CPU."""
    names = [c for c in (checks or POWER_CHECKS) if c in CHECKS]
    return [c for c in names if CHECKS[c].skip_reason(spec, "cpu", dtype) is None]


def power(
    spec: Spec,
    *,
    checks: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    errors: Iterable[float] = ERRORS,
    modes: Sequence[str] = MODES,
    seed: int = 0,
    max_examples: int = MAX_EXAMPLES,
    progress: Callable[[Power], None] | None = None,
) -> list[Power]:
    """For each applicable check and dtype, the smallest planted r that it catches.

    Errors run from the largest down and stop at the first one missed. Every run
    uses the same ``seed`` and ``max_examples``, so the draws are the same for
    every r and the clean run.

    >>> from harness import Input
    >>> cube = Spec(forward=lambda x: x**3, inputs={"x": Input(["n"], low=1.0, high=2.0)},
    ...             name="cube")
    >>> [row] = power(cube, checks=["finite_difference"], dtypes=["float64"],
    ...               errors=[1e-2, 1e-4], max_examples=3)
    >>> row.clean, row.smallest
    (True, {'one': 0.0001, 'all': 0.0001})
    """
    errors = sorted(errors, reverse=True)
    rows = []
    names = [c for c in (checks or POWER_CHECKS) if c in CHECKS]
    for check in names:
        for dtype_name in dtypes:
            if CHECKS[check].skip_reason(spec, "cpu", dtype_name) is not None:
                continue
            row = _power_row(spec, check, dtype_name, errors, modes, seed, max_examples)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _power_row(spec, check, dtype_name, errors, modes, seed, max_examples) -> Power:
    dtype = getattr(torch, dtype_name)
    # Power asks whether a planted error is caught, never for its smallest example: no
    # shrinking (most of the time of a caught one), nothing written to the example database.
    draw = settings(settings.default, phases=(Phase.explicit, Phase.generate), database=None)

    def run(s: Spec) -> Any:
        return verify(s, checks=[check], dtype=dtype, seed=seed, max_examples=max_examples,
                      settings=draw)

    clean = run(spec)
    if check in clean.skipped and not clean.failures:
        return Power(spec.name or "?", check, dtype_name, skipped=clean.skipped[check])
    smallest: dict[str, float | None] = {}
    for mode in modes:
        smallest[mode] = None
        for r in errors:
            if run(planted(spec, r, mode)).passed:
                break
            smallest[mode] = r
    headline = clean.failures[0].headline if clean.failures else ""
    return Power(spec.name or "?", check, dtype_name, smallest, clean=clean.passed,
                 clean_headline=headline)


def format_cells(row: Power | None) -> str:
    """A dtype's cells of the table: ``1e-6  1e-7`` (one, all), ``skipped``, or ``-``."""
    if row is None:
        return "-".ljust(CELL * 2)
    if row.skipped:
        return "skipped".ljust(CELL * 2)
    if not row.clean:
        return "r=0 FAILS".ljust(CELL * 2)
    return "".join(_r(r).ljust(CELL) for r in row.smallest.values())


CELL = 7
CHECK_WIDTH = 20


def table(spec: Spec, rows: Sequence[Power], dtypes: Sequence[str] = DTYPES) -> list[str]:
    """The spec's lines of the table: its name and location, then a line per check.

    >>> row = Power("cube", "taylor", "float64", {"one": 1e-06, "all": 1e-07})
    >>> print(table(Spec(forward=lambda x: x, inputs={"x": __import__("harness").Input()},
    ...                  name="cube", path="specs/a.toml", line=3), [row], ["float64"])[1])
      taylor              1e-6   1e-7
    """
    lines = [f"{spec.name}  {spec.location}"]
    for check in dict.fromkeys(row.check for row in rows):
        by_dtype = {row.dtype: row for row in rows if row.check == check}
        cells = "  ".join(format_cells(by_dtype.get(dtype)) for dtype in dtypes)
        lines.append(f"  {check.ljust(CHECK_WIDTH)}{cells}".rstrip())
        for row in by_dtype.values():
            if not row.clean:
                lines.append(f"      r=0 failed in {row.dtype}: {row.clean_headline}")
    return lines


def header(dtypes: Sequence[str], seed: int, max_examples: int) -> list[str]:
    width = CELL * 2
    return [
        f"smallest relative error r caught (r and every larger one; planted "
        f"{_r(ERRORS[0])} ... {_r(ERRORS[-1])}), seed {seed}, {max_examples} examples",
        "one: one output element's cotangent x (1 + r); all: the whole gradient x (1 + r); "
        "'none': not even 1e-2",
        " " * (CHECK_WIDTH + 2) + "  ".join(d.ljust(width) for d in dtypes).rstrip(),
        " " * (CHECK_WIDTH + 2) + "  ".join("one".ljust(CELL) + "all".ljust(CELL)
                                            for _ in dtypes).rstrip(),
    ]


def _r(r: float | None) -> str:
    return "none" if r is None else f"{r:.0e}".replace("e-0", "e-")


def main(entries: Sequence[Any], *, checks: Sequence[str] | None = None,
         dtypes: Sequence[str] = DTYPES, seed: int = 0,
         max_examples: int = MAX_EXAMPLES) -> int:
    """``python -m harness power``: the table for every entry (a Spec, or a
    ``harness.load.files.Broken`` spec file entry); 1 if r = 0 fails (a right gradient
    reported wrong) or a spec is invalid."""
    import warnings

    from hypothesis.errors import HypothesisSideeffectWarning

    from harness.load.files import Broken

    print("\n".join(header(dtypes, seed, max_examples)))
    with warnings.catch_warnings():
        # Finding the project imports pytest's plugins, Hypothesis' among them, which then
        # takes every draw of this command for one made while plugins load.
        warnings.simplefilter("ignore", HypothesisSideeffectWarning)
        return _tables(entries, Broken, checks, dtypes, seed, max_examples)


def _tables(entries, broken_type, checks, dtypes, seed, max_examples) -> int:
    clean = True
    for entry in entries:
        if isinstance(entry, broken_type):
            print(f"{entry.name}  INVALID  {entry.error}")
            clean = False
            continue
        rows = power(entry, checks=checks, dtypes=dtypes, seed=seed,
                     max_examples=max_examples)
        clean = clean and all(row.clean for row in rows)
        print("\n".join(table(entry, rows, dtypes)), flush=True)
    return 0 if clean else 1
