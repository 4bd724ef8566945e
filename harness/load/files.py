"""Spec files -> specs. TOML files are data; Python spec modules are imported.

``is_spec_file`` (from :mod:`harness.load.discovery`) is the one rule by which the pytest
plugin and ``python -m harness`` find spec files. ``load_file`` never raises for a bad
spec: each one that cannot be built becomes a ``Broken`` entry carrying its SpecError
(with path and line), so one bad spec costs only its own item. ``load_specs`` is the
strict form for library users.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SpecError
from harness.load.discovery import NORECURSEDIRS, SPEC_SUFFIXES, is_spec_file, is_under, spec_files
from harness.load.toml_spec import spec_from_table
from harness.spec import Input, Spec, deferring_errors

__all__ = ["NORECURSEDIRS", "SPEC_SUFFIXES", "Broken", "is_spec_file", "is_under", "load_file",
           "load_specs", "spec_files"]
_HEADER = re.compile(r"^\s*\[\[?\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*[.\]]")
_TOP_KEY = re.compile(r"^\s*(\"[^\"]*\"|[A-Za-z0-9_-]+)\s*[.=]")
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True)
class Broken:
    """A spec (or a whole file) that could not be loaded."""

    name: str
    error: SpecError

    @property
    def line(self) -> int | None:
        return self.error.line


def load_specs(path: str | os.PathLike) -> list[Spec]:
    """The specs of a ``.toml`` or ``.py`` file, or of every spec file in a folder.

    Raises the first SpecError met; use ``load_file`` to keep going past bad specs.

    >>> specs = load_specs("specs/seed.toml")  # doctest: +SKIP
    >>> [spec.name for spec in specs][:2]  # doctest: +SKIP
    ['scalar_chain', 'two_inputs']
    """
    specs = []
    for file in spec_files(path):
        for entry in load_file(file):
            if isinstance(entry, Broken):
                raise entry.error
            specs.append(entry)
    return specs


def load_file(
    path: str | os.PathLike, *, rootdir: str | os.PathLike | None = None,
) -> list[Spec | Broken]:
    """Every spec of one spec file, each a ``Spec`` or, if it cannot be built, ``Broken``.

    A Python spec module is imported the way pytest imports a test module: the
    first folder above it without an ``__init__.py``, and ``rootdir`` (the pytest
    rootdir), go on ``sys.path`` first, so ``from mypkg import f`` finds the
    project's own package in a checkout.

    >>> [entry.name for entry in load_file("specs/seed.toml")][:2]
    ['scalar_chain', 'two_inputs']
    """
    path = Path(path)
    shown = _shown(path)
    if path.suffix == ".py":
        return _load_python(path, shown, rootdir)
    return _load_toml(path, shown)


def _shown(path: Path) -> str:
    """The path as messages show it: relative to the working folder where possible."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _load_toml(path: Path, shown: str) -> list[Spec | Broken]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return [_file_broken(path, shown, 1, f"is not UTF-8 text ({error.reason} at byte "
                                             f"{error.start}) — save it as UTF-8")]
    except OSError as error:
        return [_file_broken(path, shown, None, f"cannot be read: {error.strerror}")]
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return _load_toml_chunks(text, path, shown)
    lines = _spec_lines(text)
    return [_build(name, table, text, lines, shown) for name, table in document.items()]


def _load_toml_chunks(text: str, path: Path, shown: str) -> list[Spec | Broken]:
    """A file with a syntax error: parse each spec's lines alone so the rest survive."""
    lines = [line + "\n" for line in _toml_lines(text)]
    starts = _spec_lines(text)
    if not starts:
        return [_toml_syntax_broken(path.stem, text, 0, shown)]
    bounds = sorted(starts.values())
    entries: list[Spec | Broken] = []
    first = bounds[0] - 1
    if "".join(lines[:first]).strip():
        entries.append(_toml_syntax_broken(path.stem, "".join(lines[:first]), 0, shown))
    for name, start in starts.items():
        end = min((b for b in bounds if b > start), default=len(lines) + 1)
        chunk = "".join(lines[start - 1 : end - 1])
        try:
            document = tomllib.loads(chunk)
        except tomllib.TOMLDecodeError:
            entries.append(_toml_syntax_broken(name, chunk, start - 1, shown))
            continue
        for key, table in document.items():
            entries.append(_build(key, table, text, starts, shown))
    return entries


def _toml_syntax_broken(name: str, chunk: str, offset: int, shown: str) -> Broken:
    try:
        tomllib.loads(chunk)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_LINE.search(str(error))
        line = offset + int(found.group(1)) if found else offset + 1
        message = f"TOML syntax error: {error} — fix the syntax; the other specs still load"
        message = _TOML_LINE.sub(f"at line {line}", message)
        return Broken(name, SpecError(message, path=shown, line=line, spec=name))
    return Broken(name, SpecError("TOML syntax error", path=shown, line=offset + 1, spec=name))


def _spec_lines(text: str) -> dict[str, int]:
    """The line where each top-level table starts: its first header or dotted key."""
    starts: dict[str, int] = {}
    in_table = False
    in_string: str | None = None  # the delimiter of the multi-line string we are in
    for number, line in enumerate(_toml_lines(text), start=1):
        was_in_string = in_string
        in_string = _multiline_state(line, in_string)
        if was_in_string:
            continue
        header = _HEADER.match(line)
        if header:
            in_table = True
            starts.setdefault(header.group(1).strip("\"'"), number)
        elif not in_table and (key := _TOP_KEY.match(line)):
            starts.setdefault(key.group(1).strip("\"'"), number)
    return starts


def _multiline_state(line: str, delimiter: str | None) -> str | None:
    """Whether a multi-line string (\"\"\" or ''') is still open after ``line``."""
    position = 0
    while True:
        if delimiter:
            end = line.find(delimiter, position)
            if end < 0:
                return delimiter
            position, delimiter = end + 3, None
            continue
        starts = [(line.find(d, position), d) for d in ('"""', "'''")]
        starts = [(i, d) for i, d in starts if i >= 0]
        if not starts:
            return None
        position, delimiter = min(starts)
        position += 3


def _toml_lines(text: str) -> list[str]:
    """Lines as TOML counts them: only \n ends a line (str.splitlines knows more)."""
    return text.split("\n")


def _build(name: str, table, text: str, starts: dict[str, int], shown: str) -> Spec | Broken:
    line = starts.get(name, 1)
    try:
        return spec_from_table(name, table, shown, line)
    except SpecError as error:
        end = min((s for s in starts.values() if s > line), default=None)
        own_lines = _toml_lines(text)[line - 1 : end - 1 if end else None]
        offset = _key_line(own_lines, name, error.key)
        return Broken(name, SpecError(error.message, path=shown, line=line + offset,
                                      spec=name))


def _key_line(lines: list[str], name: str, key: str) -> int:
    """The offset of ``key`` ("backward.W", "examples[1]") in the spec's own lines."""
    example = re.fullmatch(r"examples\[(\d+)\]", key)
    if example:
        header = re.compile(r"^\s*\[\[\s*" + _quoted(name) + r"\s*\.\s*examples\s*\]\]")
        found = [i for i, line in enumerate(lines) if header.match(line)]
        index = int(example.group(1))
        if index < len(found):
            return found[index]
        key = "examples"
    if not key:
        return 0
    parts = [_quoted(part) for part in key.split(".")]
    patterns = [
        r"^\s*" + r"\s*\.\s*".join(parts) + r"\s*=",
        r"^\s*\[[^\]]*\." + r"\s*\.\s*".join(parts) + r"\s*\]",
        r"^\s*\[[^\]]*\.\s*" + parts[0] + r"\s*\]",
        r"^\s*" + parts[0] + r"\s*[.=]",
        r"\b" + parts[-1] + r"\s*=",
    ]
    for pattern in patterns:
        for offset, line in enumerate(lines):
            if re.search(pattern, line):
                return offset
    return 0


def _quoted(part: str) -> str:
    """A key part as TOML may write it: bare, or in single or double quotes."""
    escaped = re.escape(part)
    return rf"""(?:{escaped}|"{escaped}"|'{escaped}')"""


def _file_broken(path: Path, shown: str, line: int | None, what: str) -> Broken:
    return Broken(path.stem, SpecError(f"the file {what}", path=shown, line=line,
                                       spec=path.stem))


def _load_python(path: Path, shown: str, rootdir) -> list[Spec | Broken]:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"harness_spec_modules.{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    searched = _import_paths(path, rootdir)
    with deferring_errors(path) as invalid:
        try:
            module_spec.loader.exec_module(module)
        except SpecError as error:
            sys.modules.pop(module_name, None)
            line = error.line if _same_file(error.path, path) else _failing_line(error, path)
            return [*_deferred(invalid, path, shown, _variables(module)),
                    Broken(error.spec or path.stem,
                           SpecError(error.message, path=shown, line=line,
                                     spec=error.spec or path.stem))]
        except (Exception, SystemExit) as error:  # a spec module is user code: its own item
            sys.modules.pop(module_name, None)
            return [*_deferred(invalid, path, shown, _variables(module)),
                    _file_broken(path, shown, _failing_line(error, path),
                                 f"failed to import: {type(error).__name__}: {error} — "
                                 f"{_import_advice(error, path, searched)}")]
    return _module_specs(module, path, shown, invalid)


def _import_paths(path: Path, rootdir) -> list[str]:
    """Put the spec module's import root and the rootdir on ``sys.path`` (first, as
    pytest's default ``prepend`` import mode does); the folders, as searched."""
    folder = path.resolve().parent
    while (folder / "__init__.py").is_file():  # inside a package: import from above it
        folder = folder.parent
    wanted = [str(folder)] + ([] if rootdir is None else [str(Path(rootdir).resolve())])
    for entry in reversed(wanted):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return list(dict.fromkeys(wanted))


def _import_advice(error: BaseException, path: Path, searched: list[str]) -> str:
    if isinstance(error, ModuleNotFoundError) and error.name:
        package = error.name.partition(".")[0]
        folders = " and ".join(_shown(Path(folder)) for folder in searched)
        return (f"install the package that provides {package!r} (pip install -e . in its "
                f"project), or add the folder that holds it to pythonpath in the pytest "
                f"configuration (e.g. pythonpath = [\"src\"] under "
                f"[tool.pytest.ini_options]); {folders} (the spec module's folder and the "
                f"rootdir) are on sys.path already; the other spec files still load")
    return "fix the module; the other spec files still load"


def _module_specs(module, path: Path, shown: str, invalid) -> list[Spec | Broken]:
    entries: list[Spec | Broken] = []
    seen: set[int] = set()
    lines = {id(entry): line for entry, line in invalid}
    for variable, value in vars(module).items():
        if isinstance(value, Spec) and id(value) not in seen:
            seen.add(id(value))
            value.name = value.name or variable
            if value.error is not None:
                entries.append(_broken_spec(value, path, shown, lines.get(id(value))))
                continue
            if value.path is None or _same_file(value.path, path):
                value.path = shown
            entries.append(value)
    left = [(entry, line) for entry, line in invalid if id(entry) not in seen]
    return entries + _deferred(left, path, shown)


def _variables(module) -> dict[int, str]:
    """id of each module-level value -> its variable (the first that holds it)."""
    names: dict[int, str] = {}
    for variable, value in vars(module).items():
        names.setdefault(id(value), variable)
    return names


def _deferred(invalid, path: Path, shown: str, names: dict[int, str] | None = None,
              ) -> list[Broken]:
    """Broken entries for invalid Specs and Inputs, named by the variable that holds
    them where ``names`` knows one."""
    broken = []
    for entry, line in invalid:
        if isinstance(entry, Spec) and names and id(entry) in names:
            entry.name = entry.name or names[id(entry)]
        if isinstance(entry, Input):
            error = entry.error
            where = line if line is not None else error.line
            broken.append(Broken(
                f"{path.stem}-line{where}" if where else path.stem,
                SpecError(f"Input(...) is invalid: {error.message}", path=shown, line=where,
                          spec=path.stem)))
        else:
            broken.append(_broken_spec(entry, path, shown, line))
    return broken


def _broken_spec(spec: Spec, path: Path, shown: str, module_line: int | None) -> Broken:
    error = spec.error
    line = error.line if _same_file(error.path, path) else (module_line or error.line)
    name = spec.name or (f"{path.stem}-line{line}" if line else path.stem)
    return Broken(name, SpecError(error.message, path=shown, line=line,
                                  spec=error.spec or name))


def _same_file(candidate: str | None, path: Path) -> bool:
    try:
        return candidate is not None and os.path.samefile(candidate, path)
    except OSError:
        return False


def _failing_line(error: BaseException, path: Path) -> int | None:
    if isinstance(error, SyntaxError) and _same_file(error.filename, path):
        return error.lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _same_file(f.filename, path)]
    return frames[-1].lineno if frames else None
