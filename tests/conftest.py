"""Shared fixtures: pytester for the plugin tests, and a writer of spec files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from harness.plugin import CI_VARIABLES

pytest_plugins = ["pytester"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Keep --doctest-modules off this file: as module 'conftest' it clashes with
    benchmarks/conftest.py (which pyproject's addopts ignores for the same reason)."""
    return True if collection_path == Path(__file__) else None


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with the harness-dev profile in the inner run, and this run's profile kept.

    The plugin picks harness-ci when a CI variable is set; an inner run given
    --hypothesis-profile loads that profile, globally in the process that pytester
    runs in.
    """
    for variable in CI_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    profile = settings.get_current_profile_name()
    yield pytester
    settings.load_profile(profile)


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
