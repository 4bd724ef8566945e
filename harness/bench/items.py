"""The benchmark items the plugin yields, in any project, and the cheap-gradient summary.

Under ``pytest --benchmark-only`` (or ``--benchmark-enable``) every spec with a
differentiable input gets one item per device, ``path::spec::benchmark[cpu]``:
the graph is built once at the spec's benchmark sizes (``harness.bench``) and
pytest-benchmark's own ``benchmark`` fixture times the backward pass alone, so every
``--benchmark-*`` option (``--benchmark-json``, ``--benchmark-compare``, ...) applies.
``extra_info`` carries the forward and backward medians, their ratio and the input
size; each spec is its own group. Plain ``pytest`` neither collects nor times them.
After the timings, the specs whose backward/forward ratio exceeds
``--harness-ratio-bound`` are listed as a warning.

Imports no torch at module level (``pytest --help`` must stay fast).
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

import pytest

from harness.errors import SpecError

RATIO_BOUND = 5.0  # Griewank & Walther: reverse mode costs about 3-5 times the function
BOUND = pytest.StashKey[float]()
MEASUREMENTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "gradient harness (spec files)")
    text = (
        "Backward/forward time ratio above which the benchmark summary lists a spec as "
        "breaking the cheap-gradient bound (reverse mode costs about 3-5 times the "
        "function); a warning, never a failure."
    )
    group.addoption(
        "--harness-ratio-bound", metavar="RATIO", type=float, default=None,
        dest="harness_ratio_bound",
        help=f"{text} Default: {RATIO_BOUND:g} (ini: harness_ratio_bound).",
    )
    parser.addini("harness_ratio_bound", f"{text} Default: {RATIO_BOUND:g}",
                  default=str(RATIO_BOUND))


def timing(config: pytest.Config) -> bool:
    """Whether benchmarks were asked for: ``--benchmark-only`` or ``--benchmark-enable``."""
    return bool(config.getoption("benchmark_only", False)
                or config.getoption("benchmark_enable", False))


def benchmark_only(config: pytest.Config) -> bool:
    """``--benchmark-only``: the harness yields its benchmark items and no check items."""
    return bool(config.getoption("benchmark_only", False))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[MEASUREMENTS] = []
    config.stash[BOUND] = ratio_bound(config)


def ratio_bound(config: pytest.Config) -> float:
    """``--harness-ratio-bound``, else ini ``harness_ratio_bound``; a UsageError if bad."""
    value = config.getoption("harness_ratio_bound", None)
    if value is None:
        raw = config.getini("harness_ratio_bound")
        try:
            value = float(raw)
        except ValueError:
            raise pytest.UsageError(f"harness_ratio_bound={raw!r} is not a number — "
                                    f"write e.g. harness_ratio_bound = 5") from None
    if not value > 0:
        raise pytest.UsageError(f"--harness-ratio-bound={value!r} must be a positive number")
    return value


def _benchmark_backward(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """The body of every benchmark item: time its spec's backward pass on its device."""
    item = request.node
    time_backward(item.spec, item.device, benchmark, request.config)


def time_backward(spec, device: str, benchmark: Any, config: pytest.Config) -> None:
    """Time ``spec``'s backward alone with pytest-benchmark's ``benchmark`` fixture; the
    forward is timed beside it for ``extra_info`` and the cheap-gradient summary."""
    from harness.bench.measure import WARMUP_ROUNDS, device_skip_reason, prepare
    from harness.bench.timing import time_calls
    from harness.errors import BenchmarkSkipped

    reason = device_skip_reason(device)
    if reason:
        raise pytest.skip.Exception(reason, _use_item_location=True)
    try:  # untimed (pytest-benchmark disabled, e.g. under xdist): warming up would only cost
        run = prepare(spec, device=device, warmup=WARMUP_ROUNDS if benchmark.enabled else 0)
    except BenchmarkSkipped as skipped:
        raise pytest.skip.Exception(skipped.reason, _use_item_location=True) from None
    benchmark.group = f"{spec.path}::{spec.name}"
    benchmark.extra_info.update(spec=spec.name, location=spec.location, dims=run.dims,
                                input_elements=run.input_elements, device=device,
                                dtype=str(run.dtype).removeprefix("torch."))
    if not benchmark.enabled:
        benchmark(run.backward)
        return
    (forward,) = time_calls(
        [run.forward], min_rounds=config.getoption("benchmark_min_rounds"),
        min_time=float(config.getoption("benchmark_max_time")) / 2,
    )
    benchmark(run.backward)
    backward = benchmark.stats.stats
    measurement = run.measurement(statistics.median(forward), backward.median,
                                  min(forward), backward.min)
    benchmark.extra_info.update(measurement.extra_info())
    config.stash[MEASUREMENTS].append(measurement)


class BenchmarkItem(pytest.Function):
    """``path::spec::benchmark[device]``: a pytest function item using pytest-benchmark's
    fixture, so that pytest-benchmark times, groups, saves and compares it."""

    spec: Any
    device: str

    @classmethod
    def create(cls, parent: pytest.Collector, spec, device: str) -> BenchmarkItem:
        item = cls.from_parent(parent, name=f"benchmark[{device}]", callobj=_benchmark_backward)
        item.spec, item.device = spec, device
        item.user_properties += [("harness_spec", parent.nodeid), ("harness_benchmark", device)]
        return item

    def reportinfo(self):
        return self.spec.path, (self.spec.line or 1) - 1, f"{self.spec.name}::{self.name}"

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecError):
            from harness._compat import message_repr

            return message_repr(str(excinfo.value), self.spec.path, self.spec.line)
        return super().repr_failure(excinfo, style=style)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config):
    """After pytest-benchmark's table (even when its regression check raises): the specs
    over the cheap-gradient bound, as a warning."""
    try:
        return (yield)
    finally:
        _summarise_ratios(terminalreporter, config)


def _summarise_ratios(terminalreporter, config: pytest.Config) -> None:
    """A spec is listed when its ratio of medians and its ratio of minima both exceed the
    bound. Specs whose backward costs under ``OVERHEAD_FACTOR`` times an empty backward
    share one line: there the fixed cost of a call, not the arithmetic, sets the ratio."""
    measured = config.stash.get(MEASUREMENTS, [])
    if not measured:
        return
    from harness.bench.measure import OVERHEAD_FACTOR, call_overhead, over_bound, overhead_bound
    from harness.errors import BenchmarkSkipped

    bound = config.stash[BOUND]
    over = over_bound(measured, bound)
    title = f"cheap-gradient bound {bound:g}: {len(over)} of {len(measured)} backward/forward"
    if not over:
        terminalreporter.write_sep("-", f"{title} ratios above it", green=True)
        return
    terminalreporter.write_sep("=", f"{title} ratios above it (warning)", yellow=True)
    empty = {}
    for device in sorted({m.device for m in over}):
        with contextlib.suppress(BenchmarkSkipped):  # no baseline: a line per spec
            empty[device] = call_overhead(device)
    overhead = [m for m in over if m.device in empty and overhead_bound(m, empty[m.device])]
    for m in over:
        if m not in overhead:
            terminalreporter.line(_warning_line(m, bound), yellow=True)
    if overhead:
        names = ", ".join(f"{m.spec} [{m.device}] {m.ratio:.1f}" for m in overhead)
        fixed = ", ".join(f"{_time(e.backward_min_s)} on {d}" for d, e in empty.items())
        terminalreporter.line(
            f"WARNING overhead-bound (backward under {OVERHEAD_FACTOR:g}x that of one "
            f"operation on one element, {fixed}: the fixed cost of a call, not the "
            f"arithmetic, sets the ratio; give these specs larger `benchmark` sizes): {names}",
            yellow=True)


def _warning_line(m, bound: float) -> str:
    dims = ", ".join(f"{name}={size}" for name, size in m.dims.items()) or "scalar inputs"
    minima = "" if m.ratio_min is None else f", of minima {m.ratio_min:.1f}"
    return (
        f"WARNING {m.spec} [{m.device}, {m.dtype}]: backward/forward = {m.ratio:.1f}{minima} "
        f"> {bound:g} (median backward {_time(m.backward_s)}, forward {_time(m.forward_s)}; "
        f"{dims}; {m.input_elements:,} input elements)"
    )


def _time(seconds: float) -> str:
    """Seconds in the unit that reads best.

    >>> _time(2.5e-5), _time(0.0123), _time(3.0)
    ('25.0 µs', '12.30 ms', '3.00 s')
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
