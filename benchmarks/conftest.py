"""The backward-pass benchmark suite: timing only when asked, and the cheap-gradient summary.

``pytest`` alone runs every benchmark once, untimed (pytest-benchmark's
``--benchmark-disable`` semantics: a smoke test); ``pytest --benchmark-only`` or
``--benchmark-enable`` times them. After the timings, the specs whose
backward/forward ratio exceeds ``--harness-ratio-bound`` are listed as a warning.
"""

from __future__ import annotations

import contextlib

import pytest

RATIO_BOUND = 5.0  # Griewank & Walther: reverse mode costs about 3-5 times the function
TIMING = pytest.StashKey[bool]()
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


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's, which makes its session
def pytest_configure(config: pytest.Config) -> None:
    asked = config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False)
    config.stash[TIMING] = bool(asked)
    config.stash[MEASUREMENTS] = []
    config.stash[BOUND] = ratio_bound(config)
    session = config.pluginmanager.get_plugin("pytest-benchmark")
    if not asked and hasattr(session, "xdist_warning"):
        session.xdist_warning = False  # untimed on purpose: "disabled under xdist" is noise


@pytest.fixture
def benchmark(benchmark, request: pytest.FixtureRequest):
    """pytest-benchmark's fixture, disabled (one untimed call) unless timing was asked for."""
    if not request.config.stash.get(TIMING, False):
        benchmark.disabled = True
    return benchmark


@pytest.fixture
def measurements(request: pytest.FixtureRequest) -> list:
    """Where a benchmark records its ``harness.bench.Measurement`` for the summary."""
    return request.config.stash[MEASUREMENTS]


def ratio_bound(config: pytest.Config) -> float:
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
    from harness.bench import (
        OVERHEAD_FACTOR,
        call_overhead,
        over_bound,
        overhead_bound,
    )
    from harness.timing import BenchmarkSkipped

    measured = config.stash.get(MEASUREMENTS, [])
    if not measured:
        return
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
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
