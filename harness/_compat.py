"""Every use of a private or undocumented API of pytest or Hypothesis, each with why.

Kept in one place so that a new release that moves one breaks one module, and so
that each use is a decision written down.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def hypothesis_statistics(item: pytest.Item) -> Iterator[None]:
    """Let ``--hypothesis-show-statistics`` report a harness item.

    Hypothesis' pytest plugin collects statistics only around items that are
    ``@given`` functions: it sets ``hypothesis.statistics.collector`` (undocumented)
    around the call and prints ``item.hypothesis_statistics`` (an attribute its
    ``pytest_runtest_makereport`` reads) in its terminal summary. A harness item
    runs ``@given`` tests inside ``verify``, so it sets the same two itself. Without
    them (an older or newer Hypothesis) the items run unreported, nothing else.
    """
    try:
        from hypothesis.statistics import collector, describe_statistics
    except ImportError:  # pragma: no cover - a Hypothesis without this module
        yield
        return

    def note(stats: dict) -> None:
        stats["nodeid"] = item.nodeid
        item.hypothesis_statistics = describe_statistics(stats)

    with collector.with_value(note):
        yield


def matches_python_files(path: Path, patterns: list[str]) -> bool:
    """Whether pytest collects ``path`` as a test module by its ``python_files`` patterns.

    Mirrors ``_pytest.python.path_matches_patterns`` (private): a pattern without a
    path separator matches the file name, one with a separator the whole path.

    >>> matches_python_files(Path("tests/test_a.py"), ["test_*.py", "*_test.py"])
    True
    >>> matches_python_files(Path("specs/nn.py"), ["test_*.py", "*_test.py"])
    False
    """
    for pattern in patterns:
        target = str(path) if os.sep in pattern or "/" in pattern else path.name
        if fnmatch.fnmatch(target, pattern):
            return True
    return False
