"""python -m harness list|validate|power|formulas|bench-plot [PATHS]: spec files without pytest.

``validate`` exits 1 with the same messages pytest shows for invalid specs, which
makes it a pre-commit hook; ``list`` shows each spec, where it is, its doc, its
inputs and the checks that apply; ``power`` plants relative errors in each spec's
gradient and prints the smallest one each check catches (harness/power.py);
``formulas`` prints what a TOML formula may use.
Spec files are found as the pytest plugin finds them: the project's pytest
configuration (ini ``harness_specs``, default ``specs``) and the one rule of
``harness.load.files.is_spec_file``; a file named on the command line is always read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import unknown_name
from harness.registry import CHECK_NAMES, DTYPE_NAMES


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m harness`` and the ``harness`` script.

    >>> main(["validate", "specs/seed.toml"])  # doctest: +SKIP
    6 valid, 0 invalid specs
    0
    """
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("list", "list specs with their doc, inputs and checks"),
                       ("validate", "load every spec; exit 1 if any is invalid")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "paths", nargs="*", metavar="PATH",
            help="spec files or folders (default: the spec folders of the project's pytest "
                 "configuration, ini harness_specs, else specs)")
    power = commands.add_parser(
        "power", help="the smallest planted gradient error each check catches",
        description="plant relative errors r = 1e-2 ... 1e-8 in each spec's gradient "
                    "(one output element's cotangent, or all of it, x (1 + r)) and print "
                    "per spec, check and dtype the smallest r caught; exit 1 if a right "
                    "gradient (r = 0) fails")
    power.add_argument("paths", nargs="*", metavar="PATH",
                       help="spec files or folders (default: as for list)")
    power.add_argument("--checks", type=_names_of("check", CHECK_NAMES), metavar="NAMES",
                       help="comma-separated checks (default: all that apply)")
    power.add_argument("--dtypes", type=_names_of("dtype", DTYPE_NAMES), metavar="NAMES",
                       default="float64,float32", help="default: %(default)s")
    power.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    power.add_argument("--max-examples", type=int, default=5, help="default: %(default)s")
    commands.add_parser("formulas", help="print what a TOML formula may use (the whitelist)",
                        description="print what a TOML formula may use (the whitelist)")
    commands.add_parser("bench-plot", help="plot backward time against input size",
                        add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench-plot":
        from harness.bench.plot import main as bench_plot

        return bench_plot(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "formulas":
        from harness.load.whitelist import describe

        print(describe())
        return 0
    entries = _entries(args.paths)
    if entries is None:
        return 2
    if args.command == "power":
        from harness.power import main as power_main

        return power_main(entries, checks=args.checks, dtypes=args.dtypes, seed=args.seed,
                          max_examples=args.max_examples)
    return _list(entries) if args.command == "list" else _validate(entries)


def _names_of(what: str, known: Sequence[str]):
    """An argparse type: comma-separated names, each one of ``known`` (else exit 2 saying
    which is not, the closest and the choices)."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        for name in names:
            if name not in known:
                raise argparse.ArgumentTypeError(unknown_name(what, name, known))
        return names

    return parse


def _entries(paths: Sequence[str]):
    """The entries (Spec or Broken) of every spec file the paths name, as pytest would
    collect them; None (after a message) when a path names none."""
    import pytest

    from harness.errors import SpecError
    from harness.load.files import load_file, spec_files
    from harness.load.project import project

    try:
        found = project(paths)
    except pytest.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    found.use_pythonpath()
    entries = []
    for path in paths or [str(root) for root in found.spec_roots if root.exists()]:
        try:
            files = spec_files(path, found.spec_roots, norecursedirs=found.norecursedirs)
        except SpecError as error:
            print(f"error: {error}", file=sys.stderr)
            return None
        if Path(path).is_dir() and not files:
            print(f"error: {path}: no spec files — it is outside the spec folders "
                  f"({_shown(found.spec_roots)}); add it to harness_specs in the pytest "
                  f"configuration, or name its files", file=sys.stderr)
            return None
        for file in files:
            entries += load_file(file, rootdir=found.rootdir)
    if not paths and not entries:
        print(f"error: no spec files in {_shown(found.spec_roots)} — write one, or set "
              f"harness_specs in the pytest configuration", file=sys.stderr)
        return None
    return entries


def _shown(roots: Sequence[Path]) -> str:
    import os

    return ", ".join(os.path.relpath(root) for root in roots)


def _validate(entries) -> int:
    from harness.load.files import Broken

    broken = [entry for entry in entries if isinstance(entry, Broken)]
    for entry in broken:
        print(entry.error)
    valid = len(entries) - len(broken)
    print(f"{valid} valid, {len(broken)} invalid spec{'s' if len(broken) != 1 else ''}")
    return 1 if broken else 0


def _list(entries) -> int:
    from harness.load.files import Broken
    from harness.verify import applicable_checks

    for entry in entries:
        if isinstance(entry, Broken):
            print(f"{entry.name}  INVALID  {entry.error}")
            continue
        inputs = ", ".join(
            f"{name}{list(spec_input.shape)}" + ("" if spec_input.requires_grad else " (data)")
            for name, spec_input in entry.inputs.items()
        )
        print(f"{entry.name}  {entry.location}")
        if entry.doc:
            print(f"    {entry.doc}")
        print(f"    inputs: {inputs}")
        print(f"    checks: {', '.join(applicable_checks(entry))}")
    return 1 if any(isinstance(entry, Broken) for entry in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
