"""How often an example pays for measured noise: python benchmarks/noise_share.py [files]

Every comparison first judges on its cheap allowance (the tolerance floor, the oracle's
error bound); only where that does not pass are the costly terms measured — the Monte
Carlo reruns of ``harness.numerics.noise`` — and the comparison judged again. This runs
every applicable check of every spec in the given files (default: the shipped ``specs/``)
on float64 and float32 and counts, per check, the examples judged, those among them that
measured any noise, and those that needed every run (settled neither by the first
simulated run nor, failing far beyond it, by the first KEPT_RUNS of each kind: the tiers
of ``compare.judged``). Wherever a comparison measures noise it also measures the first
KEPT_RUNS of each kind and every run, and reports the largest ratios, per element, of
the whole measure to the kept one: how far below FAR_BEYOND the tier that fails early
stays. Options: --max-examples N (default 10), --seed N (default 0).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import torch
from hypothesis import settings

from harness import verify
from harness.checks.case import Case
from harness.load.files import load_specs
from harness.numerics.compare import FAR_BEYOND
from harness.numerics.noise import KEPT_RUNS, NoiseModel
from harness.spec import Spec
from harness.verify import applicable_checks

DTYPES = {"float64": torch.float64, "float32": torch.float32}
QUIET = settings(database=None, deadline=None)  # no example database written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    root = Path(__file__).resolve().parent.parent / "specs"
    files = options.files or sorted(p for p in root.iterdir() if p.suffix in (".toml", ".py"))
    specs = [spec for path in files for spec in load_specs(path)
             if isinstance(spec, Spec) and spec.error is None]

    measuring: list[int] = []  # per Case: 0 no noise measured, 1 first runs only, 2 every run
    ratios: list[tuple[float, str]] = []  # per noise-measuring comparison: whole / kept, largest
    real_init, real_measure = Case.__init__, NoiseModel.measure

    def counted_init(self, *args, **kwargs):
        measuring.append(0)
        real_init(self, *args, **kwargs)

    def counted_measure(self, quantity, **kwargs):
        runs = kwargs.get("runs")
        if measuring:
            measuring[-1] = max(measuring[-1], 2 if runs is None else 1)
        measured = real_measure(self, quantity, **kwargs)
        if runs == 1:  # a comparison that measures noise: what would each tier grant?
            kept = real_measure(self, quantity, **{**kwargs, "runs": KEPT_RUNS})
            every = real_measure(self, quantity, **{**kwargs, "runs": None})
            ratios.append((_largest_ratio(every, kept), f"{current[0]} {self.dtype}"))
        return measured

    Case.__init__, NoiseModel.measure = counted_init, counted_measure
    current = [""]
    examples, measured, whole = Counter(), Counter(), Counter()
    started = time.perf_counter()
    for spec in specs:
        for check in applicable_checks(spec):
            for dtype_name, dtype in DTYPES.items():
                if check == "devices":
                    continue
                measuring.clear()
                current[:] = [f"{spec.name}::{check}"]
                report = verify(spec, checks=[check], dtype=dtype, seed=options.seed,
                                max_examples=options.max_examples, settings=QUIET)
                if check in report.skipped:
                    continue
                examples[check, dtype_name] += len(measuring)
                measured[check, dtype_name] += sum(1 for m in measuring if m)
                whole[check, dtype_name] += sum(1 for m in measuring if m == 2)
    Case.__init__, NoiseModel.measure = real_init, real_measure
    print(f"{len(specs)} specs, {options.max_examples} examples each, "
          f"{time.perf_counter() - started:.0f} s")
    print("| check | dtype | examples | measured noise | share | every run | share |")
    print("|---|---|---|---|---|---|---|")
    for key in [*sorted(examples), None]:
        total, paid, all_runs = ((examples[key], measured[key], whole[key]) if key else
                                 (sum(examples.values()), sum(measured.values()),
                                  sum(whole.values())))
        name = f"{key[0]} | {key[1]}" if key else "all | "
        print(f"| {name} | {total} | {paid} | {100 * paid / max(total, 1):.1f}% | {all_runs} | "
              f"{100 * all_runs / max(total, 1):.1f}% |")
    ratios.sort(reverse=True)
    print(f"whole measure / first {KEPT_RUNS} of each kind, largest per element over "
          f"{len(ratios)} measures (FAR_BEYOND = {FAR_BEYOND:g}): "
          + ", ".join(f"{r:.3g} ({where})" for r, where in ratios[:5]))


def _largest_ratio(whole, kept) -> float:
    """max over elements of whole / kept (inf where kept is 0 and whole is not)."""
    largest = 0.0
    for key, value in whole.items():
        moved = value > 0
        if bool(moved.any()):
            largest = max(largest, float((value[moved] / kept[key][moved]).max()))
    return largest


if __name__ == "__main__":
    main()
