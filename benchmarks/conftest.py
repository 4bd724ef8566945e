"""This repository's own benchmarks (the oracle's cost) run untimed in a plain ``pytest``.

Plain ``pytest`` (and ``pytest -n auto``) checks what they assert and times nothing;
``pytest benchmarks --benchmark-only`` (or ``--benchmark-enable``) times them. The spec
benchmarks are not here: the plugin yields those, in any project (harness/bench_items.py).
"""

from __future__ import annotations

import pytest

from harness.bench.items import timing


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's, which makes its session
def pytest_configure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin("pytest-benchmark")
    if not timing(config) and hasattr(session, "xdist_warning"):
        session.xdist_warning = False  # untimed on purpose: "disabled under xdist" is noise


@pytest.fixture
def benchmark(benchmark, request: pytest.FixtureRequest):
    """pytest-benchmark's fixture, disabled (one untimed call) unless timing was asked for."""
    if not timing(request.config):
        benchmark.disabled = True
    return benchmark


@pytest.fixture
def one_thread():
    """One torch thread while timing ratios: on a shared 2-core machine a second OpenMP
    thread waits for a busy core, and a ratio of two timings then measures the load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
