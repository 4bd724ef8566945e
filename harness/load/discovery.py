"""The one rule by which the pytest plugin and ``python -m harness`` find spec files.

Imports neither torch nor the loader, so that the plugin can apply it at
collection without making ``pytest --help`` slow.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.errors import SpecError

SPEC_SUFFIXES = (".toml", ".py")
# pytest's default ``norecursedirs``: the folders a walk of a spec folder skips.
NORECURSEDIRS = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv",
                 "{arch}")


def is_spec_file(
    path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None, *,
    named: bool = False,
) -> bool:
    """The one discovery rule, used by the pytest plugin and by ``python -m harness``.

    A spec file is a ``.toml`` or ``.py`` file other than ``conftest.py``, either
    named explicitly (on the command line: always a spec file, like a test module
    pytest is given by name) or, unless hidden (its name starts with ``_`` or
    ``.``), inside one of the spec folders ``roots`` (ini ``harness_specs``; None
    means any folder).

    >>> is_spec_file("specs/seed.toml", ["specs"]), is_spec_file("specs/conftest.py", ["specs"])
    (True, False)
    >>> is_spec_file("specs/_helpers.py", ["specs"]), is_spec_file("tools/one.py", ["specs"])
    (False, False)
    >>> is_spec_file("tools/one.py", ["specs"], named=True)
    True
    """
    path = Path(path)
    if path.suffix not in SPEC_SUFFIXES or path.name == "conftest.py":
        return False
    if named:
        return True
    if path.name.startswith(("_", ".")):
        return False
    return roots is None or is_under(path, roots)


def is_under(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one of them."""
    resolved = Path(path).resolve()
    for root in roots:
        root = Path(root).resolve()
        if resolved == root or root in resolved.parents:
            return True
    return False


def spec_files(
    path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None, *,
    norecursedirs: Sequence[str] = NORECURSEDIRS,
) -> list[Path]:
    """The spec files ``path`` names: the file itself, or those a folder holds.

    A file is named explicitly, so it is a spec file if it has a spec file's suffix
    (``is_spec_file(..., named=True)``); a folder is walked as pytest walks one
    (skipping ``norecursedirs``) and gives the spec files inside ``roots`` (default:
    the folder itself, as ``load_specs`` treats it).

    >>> [str(p) for p in spec_files("specs", ["specs"])][:2]  # doctest: +SKIP
    ['specs/custom_functions.py', 'specs/elementwise.toml']
    >>> spec_files("specs", ["gradients"])  # a folder outside the spec folders: none
    []
    """
    path = Path(path)
    if not path.exists():
        raise SpecError(f"path={str(path)!r} does not exist — give a spec file or a folder")
    if path.is_dir():
        within = [path] if roots is None else list(roots)
        found = []
        for folder, subfolders, files in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders
                                   if not any(fnmatch.fnmatch(d, p) for p in norecursedirs))
            found += [Path(folder, name) for name in files
                      if is_spec_file(Path(folder, name), within)]
        return sorted(found)
    if path.name == "conftest.py":
        raise SpecError(f"path={str(path)!r} is pytest's conftest.py, never a spec file — "
                        f"put specs in a module of their own")
    if not is_spec_file(path, named=True):
        raise SpecError(f"path={str(path)!r} is not a .toml or .py spec file")
    return [path]
