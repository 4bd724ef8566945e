"""python -m harness list|validate|bench-plot [PATHS]: look at spec files without running pytest.

``validate`` exits 1 with the same messages pytest shows for invalid specs, which
makes it a pre-commit hook; ``list`` shows each spec, where it is, its inputs and
the checks that apply.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_PATHS = ("specs",)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m harness`` and the ``harness`` script.

    >>> main(["validate", "specs/seed.toml"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("list", "list specs with their inputs and checks"),
                       ("validate", "load every spec; exit 1 if any is invalid")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("paths", nargs="*", metavar="PATH",
                             help=f"spec files or folders (default: {' '.join(DEFAULT_PATHS)})")
    commands.add_parser("bench-plot", help="plot backward time against input size",
                        add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench-plot":
        from harness.bench_plot import main as bench_plot

        return bench_plot(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    entries = _entries(args.paths or DEFAULT_PATHS)
    if entries is None:
        return 2
    return _list(entries) if args.command == "list" else _validate(entries)


def _entries(paths: Sequence[str]):
    from harness.errors import SpecError
    from harness.loader import load_file, spec_files

    entries = []
    for path in paths:
        try:
            files = spec_files(path)
        except SpecError as error:
            print(f"error: {error}", file=sys.stderr)
            return None
        for file in files:
            entries += load_file(file)
    return entries


def _validate(entries) -> int:
    from harness.loader import Broken

    broken = [entry for entry in entries if isinstance(entry, Broken)]
    for entry in broken:
        print(entry.error)
    valid = len(entries) - len(broken)
    print(f"{valid} valid, {len(broken)} invalid spec{'s' if len(broken) != 1 else ''}")
    return 1 if broken else 0


def _list(entries) -> int:
    from harness.loader import Broken
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
        print(f"    inputs: {inputs}")
        print(f"    checks: {', '.join(applicable_checks(entry))}")
    return 1 if any(isinstance(entry, Broken) for entry in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
