"""Shared fixtures (pytester for the plugin tests, a writer of spec files), the heavy and
opinfo markers and the corpora's device.

Tests marked ``@pytest.mark.heavy`` (the markers are registered in pyproject.toml) are
deselected unless the ``-m`` expression names ``heavy``: ``pytest -m heavy`` runs them
alone, ``pytest -m "heavy or not heavy"`` runs everything (``tox -e heavy``). Tests
marked ``@pytest.mark.opinfo`` (the OpInfo corpus, tests/test_opinfo.py) likewise
unless it names ``opinfo`` (``tox -e opinfo``).

``--corpus-device=cuda`` runs the planted-bug and tricky corpora
(``tests/test_planted_bugs.py``, ``tests/test_tricky.py``) on the GPU instead of the
CPU (``tools/gpu-check.sh`` does); where CUDA is absent they are skipped.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from _pytest.pytester import SysModulesSnapshot
from hypothesis import settings

from harness.plugin import CI_VARIABLES

# Modules an in-process pytester run imports that must outlive it. pytester drops every
# module a run imported (keeping only zope's and readline's, for the same reason), but:
# torch registers operator libraries process-wide when a submodule is first imported (the
# first forward-mode jvp imports torch._dynamo, which registers one; a second import is
# an error); and the harness package keeps its submodules as attributes, so that a later
# run's `from harness import evaluate` would get the dropped module while `from
# harness.checks.evaluate import Fault` imports a new one.
KEPT_MODULES = ("zope", "readline", "torch", "functorch", "harness")

pytest_plugins = ["pytester"]


CORPUS_DEVICES = ("cpu", "cuda")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--corpus-device", choices=CORPUS_DEVICES, default="cpu", dest="corpus_device",
        help="Device that the planted-bug and tricky corpora run verify on (default: cpu); "
             "cuda where it is absent skips them.")


@pytest.fixture(scope="session")
def corpus_device(request: pytest.FixtureRequest) -> str:
    """The device of the corpora (``--corpus-device``); skips them on cuda without CUDA."""
    device = request.config.getoption("corpus_device")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("CUDA not available (--corpus-device=cuda)")
    return device


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Keep --doctest-modules off this file: as module 'conftest' it clashes with
    benchmarks/conftest.py (which pyproject's addopts ignores for the same reason)."""
    return True if collection_path == Path(__file__) else None


OFF_BY_DEFAULT = ("heavy", "opinfo")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the heavy and opinfo tests (reported as deselected, not thousands of
    skips) unless the -m expression asks about their marker."""
    expression = config.getoption("markexpr", "") or ""
    off = [m for m in OFF_BY_DEFAULT if not re.search(rf"\b{m}\b", expression)]
    deselected = [item for item in items
                  if any(item.get_closest_marker(m) for m in off)]
    if deselected:
        dropped = set(map(id, deselected))
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=deselected)


def _kept_snapshot() -> SysModulesSnapshot:
    return SysModulesSnapshot(preserve=lambda name: name.startswith(KEPT_MODULES))


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with the harness-dev profile in the inner run, this run's profile kept,
    and the torch and harness modules an inner run imports kept (KEPT_MODULES).

    The plugin picks harness-ci when a CI variable is set; an inner run given
    --hypothesis-profile loads that profile, globally in the process that pytester
    runs in.
    """
    for variable in CI_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    # On this one Pytester object (not monkeypatched: its own teardown, which restores
    # the snapshot taken at its creation, runs after monkeypatch's undo).
    pytester._Pytester__take_sys_modules_snapshot = _kept_snapshot  # each inner run's
    pytester._sys_modules_snapshot = _kept_snapshot()  # the test's own, taken just now
    profile = settings.get_current_profile_name()
    yield pytester
    settings.load_profile(profile)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny tensors: waking a second costs more than the
    work (tests that time nothing but run thousands of small verifies)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    """write(path, text): a file with the dedented text (bytes are written as they are)."""

    def write_file(path: Path, text: str | bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write_file
