"""``bench-plot``: how the backward pass scales, as a PNG.

For each chosen spec, one dim is scaled so that the largest input holds 2^8 ... 2^20
elements (sizes that run out of memory end that spec's sweep); at each size the
forward and backward medians are measured (``harness.bench.measure``). The figure
shows backward time and the backward/forward ratio against size, one line per spec
and device. matplotlib is an optional extra (``pip install 'pytest-gradharness[plot]'``).

    python -m harness bench-plot linear_mse sum_of_squares:n --out docs/scaling.png
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.bench.measure import (
    DEVICES,
    Measurement,
    benchmark_dims,
    device_skip_reason,
    input_elements,
    measure,
)
from harness.errors import BenchmarkSkipped, Fault, HarnessError
from harness.spec import Spec

RATIO_BOUND = 5.0
MISSING_MATPLOTLIB = (
    "bench-plot draws with matplotlib, which is not installed — "
    "pip install 'pytest-gradharness[plot]' (or pip install matplotlib)"
)

Sweep = tuple[str, str, list[tuple[int, Measurement]]]  # (label, device, [(size, m)])


def main(argv: list[str] | None = None) -> int:
    """Sweep sizes for the chosen specs and write the scaling figure; 0 on success,
    2 (with the reason on stderr) for a spec, dim or device it cannot sweep.

    >>> main(["linear_mse:N", "--devices", "cpu", "--max-exp", "12"])  # doctest: +SKIP
    linear_mse cpu N=4, D=64:      256 elements  forward      49.4 µs  backward     118.2 µs ...
    ...
    wrote scaling.png
    0
    """
    args = _parser().parse_args(argv)
    try:
        pyplot = _pyplot()
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        chosen, devices = _chosen(args.path, args.specs), _devices(args.devices)
        sweeps = [
            sweep
            for spec, dim in chosen
            for device in devices
            if (sweep := _sweep(spec, dim, device, args)) is not None
        ]
    except (HarnessError, Fault, ValueError, ImportError) as error:
        print(f"bench-plot: error: {error}", file=sys.stderr)
        return 2
    if not any(points for _, _, points in sweeps):
        print("bench-plot: error: nothing was measured", file=sys.stderr)
        return 1
    _plot(pyplot, sweeps, args)
    print(f"wrote {args.out}")
    return 0


def scale_dim(spec: Spec) -> str | None:
    """The dim to scale in a sweep: the one the most inputs use (the first on a tie).

    >>> from harness.spec import Input, Spec
    >>> spec = Spec(forward=lambda x, w: x @ w, inputs={"x": Input(("n", "d")),
    ...             "w": Input(("d", 1))})
    >>> scale_dim(spec)
    'd'
    """
    uses = {name: sum(name in v.dim_names for v in spec.inputs.values()) for name in spec.dims}
    return max(uses, key=uses.__getitem__) if uses else None


def scaled_dims(
    spec: Spec, dim: str, elements: int, base: Mapping[str, int] | None = None
) -> dict[str, int] | None:
    """``base`` dims (default: ``benchmark_dims``) with ``dim`` as large as it can be
    while the largest input holds at most ``elements``; None when even size 1 is over.

    >>> from harness.spec import Input, Spec
    >>> spec = Spec(forward=lambda x: x.sum(), inputs={"x": Input(("n", 4))})
    >>> scaled_dims(spec, "n", 2**10)
    {'n': 256}
    >>> scaled_dims(spec, "n", 2) is None
    True
    """
    if dim not in spec.dims:
        raise ValueError(f"dim={dim!r} is not a dim of spec {spec.name!r}: "
                         f"its dims are {', '.join(spec.dims) or 'none'}")
    dims = dict(benchmark_dims(spec) if base is None else base)

    def largest(size: int) -> int:
        return max(input_elements(spec, {**dims, dim: size}).values())

    if largest(1) > elements:
        return None
    low, high = 1, max(1, elements)
    while low < high:  # the largest size whose largest input fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if largest(middle) <= elements else (low, middle - 1)
    return {**dims, dim: low}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness bench-plot",
        description="Plot backward time and the backward/forward ratio against input size.",
    )
    parser.add_argument(
        "specs", nargs="*", metavar="SPEC[:DIM]",
        help="specs to sweep, each optionally with the dim to scale (default: the dim "
             "most inputs use); default: every spec that has a dim",
    )
    parser.add_argument("--path", default=None,
                        help="spec file or folder (default: the spec folders of the project's "
                             "pytest configuration, ini harness_specs, else specs)")
    parser.add_argument("--out", default="scaling.png", type=Path,
                        help="PNG to write (default: scaling.png)")
    parser.add_argument("--devices", default=",".join(DEVICES),
                        help="comma-separated; unavailable ones are left out (default: cpu,cuda)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                        help="default: float32")
    parser.add_argument("--min-exp", type=int, default=8, help="smallest size 2^MIN (default 8)")
    parser.add_argument("--max-exp", type=int, default=20, help="largest size 2^MAX (default 20)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds timed per pass and size (default 0.05)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--bound", type=float, default=RATIO_BOUND,
                        help=f"ratio bound drawn on the plot (default {RATIO_BOUND:g})")
    return parser


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _chosen(path: str | None, wanted: Sequence[str]) -> list[tuple[object, str]]:
    """(spec, dim to scale) for each SPEC[:DIM] asked for, or every spec with a dim; the
    spec files are those pytest collects (``harness.load.project``) unless ``path`` names one."""
    from harness.errors import did_you_mean
    from harness.load.files import Broken, load_file, spec_files
    from harness.load.project import project

    found = project([] if path is None else [path])
    found.use_pythonpath()
    roots = [path] if path is not None else [r for r in found.spec_roots if r.exists()]
    entries = [entry for root in roots
               for file in spec_files(root, None if path is not None else found.spec_roots,
                                      norecursedirs=found.norecursedirs)
               for entry in load_file(file, rootdir=found.rootdir)]
    path = path or ", ".join(os.path.relpath(root) for root in roots)
    specs = {entry.name: entry for entry in entries}
    if not wanted:
        return [(s, scale_dim(s)) for s in specs.values() if not isinstance(s, Broken) and s.dims]
    chosen = []
    for item in wanted:
        name, _, dim = item.partition(":")
        if name not in specs:
            raise ValueError(f"no spec {name!r} in {path}{did_you_mean(name, specs)}")
        spec = specs[name]
        if isinstance(spec, Broken):
            raise spec.error
        dim = dim or scale_dim(spec)
        if dim is None:
            raise ValueError(f"spec {name!r} has no dim to scale: its inputs have fixed shapes")
        if dim not in spec.dims:
            raise ValueError(f"{item!r}: {dim!r} is not a dim of spec {name!r}"
                             f"{did_you_mean(dim, spec.dims)} — its dims are "
                             f"{', '.join(spec.dims)}")
        chosen.append((spec, dim))
    return chosen


def _devices(listed: str) -> list[str]:
    devices = []
    for device in (d.strip() for d in listed.split(",") if d.strip()):
        reason = device_skip_reason(device)
        if reason:
            print(f"{device}: left out: {reason}")
        else:
            devices.append(device)
    return devices


def _sweep(spec, dim: str, device: str, args: argparse.Namespace) -> Sweep | None:
    import torch

    points = []
    for exponent in range(args.min_exp, args.max_exp + 1):
        dims = scaled_dims(spec, dim, 2**exponent)
        if dims is None or (points and dims == points[-1][1].dims):
            continue
        try:
            m = measure(spec, dims, device=device, dtype=getattr(torch, args.dtype),
                        min_time=args.min_time)
        except BenchmarkSkipped as skipped:
            print(f"{spec.name} {device} 2^{exponent}: stopped: {skipped.reason}")
            break
        size = max(input_elements(spec, dims).values())
        points.append((size, m))
        print(f"{spec.name} {device} {_dims(dims)}: {size:>8} elements  "
              f"forward {m.forward_s * 1e6:9.1f} µs  backward {m.backward_s * 1e6:9.1f} µs  "
              f"ratio {m.ratio:5.2f}", flush=True)
    return (f"{spec.name} ({dim})", device, points) if points else None


def _dims(dims) -> str:
    return ", ".join(f"{name}={size}" for name, size in dims.items())


def _plot(pyplot, sweeps: list[Sweep], args: argparse.Namespace) -> None:
    import torch

    figure, (times, ratios) = pyplot.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"cpu": ("-", "o"), "cuda": ("--", "s")}
    labels = list(dict.fromkeys(label for label, _, _ in sweeps))
    for label, device, points in sweeps:
        sizes = [size for size, _ in points]
        line, marker = styles.get(device, (":", "^"))
        style = {"color": colours[labels.index(label) % len(colours)], "linestyle": line,
                 "marker": marker, "markersize": 4, "label": f"{label}, {device}"}
        times.plot(sizes, [m.backward_s * 1e3 for _, m in points], **style)
        ratios.plot(sizes, [m.ratio for _, m in points], **style)
    times.set(xscale="log", yscale="log", xlabel="elements in the largest input",
              ylabel="backward time (ms, median)", title="Backward pass time")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    times.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    times.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    times.yaxis.set_minor_formatter(NullFormatter())
    ratios.set_xscale("log")
    ratios.set(xlabel="elements in the largest input", ylabel="backward time / forward time",
               title="Backward/forward ratio")
    ratios.axhline(args.bound, color="tab:red", linestyle=":",
                   label=f"cheap-gradient bound ({args.bound:g}x)")
    highest = max((m.ratio for _, _, points in sweeps for _, m in points), default=0.0)
    ratios.set_ylim(0, max(args.bound, min(highest, 10 * args.bound)) * 1.2)
    for axes in (times, ratios):
        axes.grid(True, which="major", alpha=0.4)
        axes.legend(fontsize="small")
    figure.suptitle(
        f"Backward-pass scaling, {args.dtype}, torch {torch.__version__}, "
        f"CPU threads={torch.get_num_threads()}"
        + (f", {torch.cuda.get_device_name()}" if any(d == "cuda" for _, d, _ in sweeps) else "")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    pyplot.close(figure)
