"""Backward-pass cost of every spec with a differentiable input, on every device.

One benchmark per spec and device: the graph is built once at the spec's benchmark
sizes (``harness.bench.benchmark_dims``) and pytest-benchmark times the backward
alone. ``extra_info`` carries the forward and backward medians, their ratio and the
input size; each spec is its own group. Timed only under ``--benchmark-only`` (or
``--benchmark-enable``); plain ``pytest`` runs each once as a smoke test.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import pytest

from harness.bench import (
    DEVICES,
    WARMUP_ROUNDS,
    device_skip_reason,
    prepare,
)
from harness.timing import BenchmarkSkipped, time_calls


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"spec", "device"} <= set(metafunc.fixturenames):
        devices = _devices(metafunc.config)
        metafunc.parametrize(("spec", "device"), _cases(metafunc.config, devices))


def _spec_paths(config: pytest.Config) -> list[Path]:
    """The plugin's spec folders (ini ``harness_specs``), else ``specs`` under the rootdir."""
    from harness.plugin import OPTIONS

    options = config.stash.get(OPTIONS, None)
    return list(options.spec_paths) if options else [config.rootpath / "specs"]


def _devices(config: pytest.Config) -> tuple[str, ...]:
    from harness.plugin import OPTIONS

    options = config.stash.get(OPTIONS, None)
    return tuple(options.devices) if options else DEVICES


def _cases(config: pytest.Config, devices: tuple[str, ...]) -> list:
    from harness.loader import Broken, load_file, spec_files

    entries = []
    for root in _spec_paths(config):
        if root.exists():
            entries += [(file, entry) for file in spec_files(root) for entry in load_file(file)]
    names = Counter(entry.name for _, entry in entries)
    cases = []
    for file, entry in entries:
        name = entry.name if names[entry.name] == 1 else f"{file.stem}.{entry.name}"
        marks = []
        if isinstance(entry, Broken):
            marks = [pytest.mark.skip(reason=f"invalid spec, not benchmarked: {entry.error}")]
        for device in devices:
            cases.append(pytest.param(entry, device, id=f"{name}-{device}", marks=marks))
    return cases


def test_backward(spec, device, benchmark, measurements, request) -> None:
    reason = device_skip_reason(device)
    if reason:
        pytest.skip(reason)
    try:  # untimed (plain pytest), warming up would only cost time
        run = prepare(spec, device=device, warmup=WARMUP_ROUNDS if benchmark.enabled else 0)
    except BenchmarkSkipped as skipped:
        pytest.skip(skipped.reason)
    benchmark.group = spec.name
    benchmark.extra_info.update(dims=run.dims, input_elements=run.input_elements,
                                device=device, dtype=str(run.dtype).removeprefix("torch."))
    if not benchmark.enabled:  # plain pytest: one untimed backward, a smoke test
        benchmark(run.backward)
        return
    config = request.config
    (forward,) = time_calls(
        [run.forward], min_rounds=config.getoption("benchmark_min_rounds"),
        min_time=float(config.getoption("benchmark_max_time")) / 2,
    )
    benchmark(run.backward)
    backward = benchmark.stats.stats
    measurement = run.measurement(statistics.median(forward), backward.median,
                                  min(forward), backward.min)
    benchmark.extra_info.update(measurement.extra_info())
    measurements.append(measurement)
