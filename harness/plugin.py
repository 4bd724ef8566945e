"""pytest plugin: spec files become items ``path::spec::check[device-dtype]``.

Registered through the ``pytest11`` entry point. torch is imported only when spec
files are collected, so ``pytest --help`` stays fast. The plugin leaves the rest of
the session alone: its Hypothesis profiles (``harness-dev``, ``harness-ci``) are
passed to its own items only, and a user's ``@given`` tests run as they would
without it. Under ``--benchmark-only`` or ``--benchmark-enable`` it also yields one
benchmark item per spec and device (``harness.bench.items``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness._compat import matches_python_files
from harness.load.discovery import is_spec_file
from harness.plugin_items import SpecFile
from harness.plugin_options import CI_VARIABLES, OPTIONS, PROFILES, HarnessOptions, add_options
from harness.registry import CHECK_DESCRIPTIONS
from harness.tally import Tally, teststatus

pytest_plugins = ["harness.bench.items"]  # the benchmark items and their summary
__all__ = ["CI_VARIABLES", "OPTIONS", "PROFILES", "HarnessOptions"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)  # after Hypothesis' plugin has loaded --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    options = HarnessOptions(config)
    config.stash[OPTIONS] = options
    config.pluginmanager.register(Tally(), "harness-tally")
    for name, description in CHECK_DESCRIPTIONS.items():
        config.addinivalue_line(
            "markers", f"{name}: harness items of the {name} check ({description})"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput:
        _share_the_cores(int(workerinput.get("workercount", 1)))
        if "cuda" in session.config.stash[OPTIONS].devices:
            _take_the_workers_gpu(workerinput.get("workerid"))


def _share_the_cores(workers: int) -> None:
    """Each pytest-xdist worker gets its share of the cores for torch's threads.

    Every worker would otherwise start a thread per core: n workers, n^2 threads on
    n cores, and the small tensors of a spec pay for the switching. A lower setting
    (OMP_NUM_THREADS) is kept.
    """
    import torch

    share = max(1, (os.cpu_count() or 1) // max(workers, 1))
    if torch.get_num_threads() > share:
        torch.set_num_threads(share)


def worker_gpu(workerid: str | None) -> int | None:
    """The GPU a pytest-xdist worker runs its CUDA items on: worker ``gw<i>`` takes
    ``cuda:{i mod count}`` of the GPUs visible (``CUDA_VISIBLE_DEVICES``); None (the
    current device stays as it is) for the controller, a run without xdist, an id
    that is not xdist's, or a machine without CUDA.

    >>> worker_gpu(None) is None  # not an xdist worker
    True
    """
    match = re.fullmatch(r"gw(\d+)", workerid or "")
    if match is None:
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return int(match.group(1)) % count if count else None


def _take_the_workers_gpu(workerid: str | None) -> None:
    """Make the worker's GPU (``worker_gpu``) the current CUDA device for the session.

    The items keep the device name ``cuda`` (the node ids and Reproduce lines stay
    the same on any host); ``cuda`` means the current device everywhere in torch, in
    a spec's own ``device="cuda"`` too, so every tensor of the worker lands on its GPU.
    """
    index = worker_gpu(workerid)
    if index is not None:
        import torch

        torch.cuda.set_device(index)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Under pytest-xdist every worker draws with the controller's seed."""
    options = node.config.stash[OPTIONS]
    if options.seed is not None:
        node.workerinput["harness_seed"] = options.seed


def pytest_report_header(config: pytest.Config) -> str:
    from harness import __version__

    options = config.stash[OPTIONS]
    seed = "derandomized" if options.seed is None else f"seed={options.seed}"
    roots = ", ".join(os.path.relpath(p, config.rootpath) for p in options.spec_paths)
    return (
        f"harness {__version__}: devices={options.devices_shown} "
        f"dtypes={','.join(options.dtypes)} profile={options.profile} {seed} specs={roots}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """A spec file becomes a SpecFile (the one rule: ``harness.load.discovery.is_spec_file``).

    A spec module is the harness's alone: pytest's Module for it (collected because it
    was named on the command line) and DoctestModule (``--doctest-modules``) are
    dropped, so that a spec module that fails to import is one failing item, not a
    collection error that interrupts the session. A ``.py`` file named on the command
    line outside the spec folders is a spec module only if loading it gives specs (or
    fails); otherwise it stays pytest's, with its tests and doctests.
    """
    collected = yield
    options = parent.config.stash[OPTIONS]
    test_module = file_path.suffix == ".py" and matches_python_files(file_path,
                                                                     options.python_files)
    named = parent.session.isinitpath(file_path) and not test_module
    if not is_spec_file(file_path, options.spec_paths, named=named):
        return collected
    spec_file = SpecFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".py" and not test_module:
        if not is_spec_file(file_path, options.spec_paths) and not spec_file.entries:
            return collected  # named, and no spec module: a module of the user's
        collected = [node for node in collected if not isinstance(node, pytest.Module)]
    return [*collected, spec_file]


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    return teststatus(report)
