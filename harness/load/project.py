"""The user's project as pytest sees it: rootdir, spec folders, ``pythonpath``.

The pytest plugin reads these from its ``pytest.Config``; ``python -m harness``
asks pytest for the same config (``project``), so that both find the same spec
files (``harness.load.files.is_spec_file``) and import spec modules alike.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_SPECS = "specs"


def spec_roots(config: pytest.Config) -> tuple[Path, ...]:
    """The spec folders: ini ``harness_specs`` (relative to the ini file), else ``specs``
    under the rootdir."""
    paths = config.getini("harness_specs") or [config.rootpath / DEFAULT_SPECS]
    return tuple(Path(path).resolve() for path in paths)


@dataclass(frozen=True)
class Project:
    """What ``python -m harness`` needs of the project's pytest configuration.

    >>> project = Project(Path("/p"), None, (Path("/p/specs"),), (), ("*.egg", ".*"))
    >>> project.spec_roots
    (PosixPath('/p/specs'),)
    """

    rootdir: Path
    inipath: Path | None
    spec_roots: tuple[Path, ...]
    pythonpath: tuple[Path, ...]
    norecursedirs: tuple[str, ...]

    def use_pythonpath(self) -> None:
        """Put ini ``pythonpath`` on ``sys.path``, as pytest does for a run."""
        for path in reversed(self.pythonpath):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))


class _Reader:
    """A pytest plugin that reads the configuration and stops before any collection."""

    project: Project | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> int:
        self.project = Project(
            rootdir=config.rootpath,
            inipath=config.inipath,
            spec_roots=spec_roots(config),
            pythonpath=tuple(Path(p) for p in config.getini("pythonpath")),
            norecursedirs=tuple(config.getini("norecursedirs")),
        )
        return 0


def project(args: Sequence[str] = ()) -> Project:
    """The project's pytest configuration for these command-line paths.

    pytest itself finds the rootdir and ini file (pytest.ini, pyproject.toml,
    tox.ini, setup.cfg) as ``pytest ARGS`` would, without loading any conftest.py
    and without collecting; a configuration pytest refuses is a ``pytest.UsageError``.

    >>> found = project(["specs"])  # doctest: +SKIP
    >>> found.spec_roots, found.inipath.name  # doctest: +SKIP
    ((PosixPath('/work/harness/specs'),), 'pyproject.toml')
    """
    reader = _Reader()
    code = pytest.main(["--noconftest", "-p", "no:cacheprovider", *args], plugins=[reader])
    if reader.project is None:
        raise pytest.UsageError(f"pytest could not read the project's configuration "
                                f"(exit code {int(code)})")
    return reader.project
