"""The helpers of tools/gpu-check.sh: a pytest plugin that tallies outcomes as they come,
the summary line of a part, the backward/forward ratios of the benchmarks, and the probe
that says whether CUDA is there.

Standard library only at module level: the GPU machine has torch and pytest but not the
harness installed, and the script runs this file before it knows whether torch imports.

As a plugin (``-p gpu_check`` with tools/ on ``PYTHONPATH``), ``--gpu-check-tally=FILE``
appends one line per test, ``outcome<TAB>nodeid``, as its report comes in (on the
controller under pytest-xdist): a part that is stopped at its time budget still has the
counts of what ran, where pytest's own summary and JUnit XML would be lost or empty.

As a command::

    python3 tools/gpu_check.py cuda                # 'NVIDIA H200, 1 GPU, ...' or why not (exit 1)
    python3 tools/gpu_check.py plugin-args         # '-p harness.plugin' unless installed
    python3 tools/gpu_check.py summary PART TALLY SECONDS EXIT BUDGET
    python3 tools/gpu_check.py ratios BENCHMARK.json
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

OUTCOMES = ("passed", "failed", "skipped")
STOPPED = (124, 137)  # timeout(1): the budget ran out (SIGTERM, then SIGKILL after the grace)
NO_TESTS = 5  # pytest's exit code when nothing was collected
FAILURES_SHOWN = 30  # failed tests listed above a part's summary line (its log has them all)


# --- the plugin ------------------------------------------------------------------------------

def pytest_addoption(parser) -> None:
    parser.addoption("--gpu-check-tally", metavar="FILE", default=None,
                     help="tools/gpu-check.sh: append each test's outcome to FILE as it ends")


def pytest_configure(config) -> None:
    """Tally on the controller (or in a run without xdist) only: a worker's reports reach
    the controller's hook as well, and would count twice."""
    path = config.getoption("gpu_check_tally")
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Tally(Path(path)), "gpu-check-tally")


class Tally:
    """Appends ``outcome<TAB>nodeid[<TAB>message]`` per test to ``path`` as it ends.

    While it is registered, SIGTERM (the budget's, from timeout(1)) is an interruption,
    as Ctrl-C is: pytest stops and reports what ran. SIGINT would not do: a shell that
    starts a command in the background makes it ignore SIGINT, and Python then never
    installs its handler.
    """

    def __init__(self, path: Path):
        self.path = path
        self.previous = signal.signal(signal.SIGTERM, _interrupt)

    def pytest_runtest_logreport(self, report) -> None:
        """A test's call's outcome, or its setup's or teardown's where that one failed or
        skipped (as pytest's own summary counts them); a failure carries its message's
        first line."""
        if report.when != "call" and report.outcome == "passed":
            return
        failed_outside = report.when != "call" and report.outcome == "failed"
        line = f"{'error' if failed_outside else report.outcome}\t{report.nodeid}"
        if report.failed:
            line += f"\t{_first_line(report)}"
        with self.path.open("a", encoding="utf-8") as tally:
            tally.write(line + "\n")

    def pytest_unconfigure(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join((text.strip().splitlines() or [""])[0].split("\t"))[:300]


def _interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends it
    raise KeyboardInterrupt(f"gpu-check: the part's time budget ran out (signal {signum})")


# --- the summary -----------------------------------------------------------------------------

def counts(tally: Path) -> Counter:
    """Passed, failed (errors included) and skipped tests in a tally file (none if absent).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tally"
    >>> _ = path.write_text("passed\\ta\\nfailed\\tb\\nerror\\tb\\nskipped\\tc\\npassed\\td\\n")
    >>> dict(counts(path))
    {'passed': 2, 'failed': 2, 'skipped': 1}
    """
    found = Counter(dict.fromkeys(OUTCOMES, 0))
    if tally.exists():
        for line in tally.read_text(encoding="utf-8").splitlines():
            outcome = line.split("\t", 1)[0]
            found["failed" if outcome == "error" else outcome] += 1
    return found


def summary(part: str, tally: Path, seconds: float, exit_code: int, budget: int) -> str:
    """The one line a part ends with.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tally"
    >>> _ = path.write_text("passed\\ta\\npassed\\tb\\n")
    >>> summary("specs", path, 12.34, 0, 180)
    'gpu-check: specs: 2 passed, 0 failed, 0 skipped in 12 s (budget 180 s)'
    >>> summary("specs", path, 181.0, 124, 180)
    'gpu-check: specs: 2 passed, 0 failed, 0 skipped in 181 s (budget 180 s): STOPPED at its budget'
    """
    found = counts(tally)
    line = (f"gpu-check: {part}: {found['passed']} passed, {found['failed']} failed, "
            f"{found['skipped']} skipped in {seconds:.0f} s (budget {budget} s)")
    if exit_code in STOPPED:
        return f"{line}: STOPPED at its budget"
    if exit_code == NO_TESTS:
        return f"{line}: no tests collected"
    if exit_code not in (0, 1):
        return f"{line}: pytest exited with {exit_code} (see the part's log)"
    return line


def failures(tally: Path) -> list[str]:
    """``nodeid: first line of the message`` of each failed test in a tally file."""
    if not tally.exists():
        return []
    lines = [line.split("\t") for line in tally.read_text(encoding="utf-8").splitlines()]
    return [f"{fields[1]}: {fields[2] if len(fields) > 2 else ''}".rstrip(": ")
            for fields in lines if fields[0] in ("failed", "error")]


def passed(tally: Path, exit_code: int) -> bool:
    """Whether a part ran to its end without a failure."""
    return exit_code == 0 and counts(tally)["failed"] == 0


# --- the benchmarks --------------------------------------------------------------------------

def ratios(report: dict) -> list[str]:
    """The backward/forward ratio of each benchmark in a ``--benchmark-json`` report, by
    spec, then device (CPU and CUDA side by side where both ran).

    >>> bench = {"benchmarks": [{"extra_info": {
    ...     "spec": "mlp", "device": "cuda", "dtype": "float32", "dims": {"N": 8},
    ...     "forward_s": 2e-5, "backward_s": 5e-5, "ratio": 2.5, "input_elements": 40}}]}
    >>> for line in ratios(bench): print(line)
    spec                 device dtype     forward     backward    ratio  dims
    mlp                  cuda   float32   20.0 µs     50.0 µs     2.50   N=8
    """
    rows = []
    for benchmark in report.get("benchmarks", []):
        info = benchmark.get("extra_info", {})
        if "ratio" not in info:  # not timed (disabled) or not one of the harness's
            continue
        dims = ", ".join(f"{k}={v}" for k, v in info.get("dims", {}).items()) or "-"
        rows.append((info["spec"], info["device"], info["dtype"], info["forward_s"],
                     info["backward_s"], info["ratio"], dims))
    lines = [f"{'spec':<20} {'device':<6} {'dtype':<9} {'forward':<11} {'backward':<11} "
             f"{'ratio':<6} dims"]
    for spec, device, dtype, forward, backward, ratio, dims in sorted(rows):
        lines.append(f"{spec:<20} {device:<6} {dtype:<9} {_time(forward):<11} "
                     f"{_time(backward):<11} {ratio:<6.2f} {dims}")
    return lines if rows else []


def _time(seconds: float) -> str:
    """
    >>> _time(2.5e-5), _time(0.0123), _time(3.0)
    ('25.0 µs', '12.30 ms', '3.00 s')
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


# --- the machine -----------------------------------------------------------------------------

def cuda() -> tuple[bool, str]:
    """(whether CUDA can run, what there is: the GPU, torch and CUDA versions, or why not)."""
    try:
        import torch
    except ImportError as error:
        return False, f"torch does not import ({error})"
    if not torch.cuda.is_available():
        build = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
        return False, f"CUDA not available (torch {torch.__version__}, {build})"
    count = torch.cuda.device_count()
    return True, (f"{torch.cuda.get_device_name(0)}, {count} GPU{'s' if count > 1 else ''}, "
                  f"torch {torch.__version__}, CUDA {torch.version.cuda}")


def plugin_args() -> list[str]:
    """``-p harness.plugin`` where the harness is not installed (no ``pytest11`` entry point
    loads it: the GPU machine runs it from the checkout, on ``PYTHONPATH``); nothing where
    it is, since a second registration of the same module is an error."""
    installed = any(entry.name == "harness" and entry.value == "harness.plugin"
                    for entry in metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "harness.plugin"]


def main(argv: list[str]) -> int:
    command, *args = argv or ["help"]
    if command == "cuda":
        available, text = cuda()
        print(text)
        return 0 if available else 1
    if command == "plugin-args":
        print(" ".join(plugin_args()))
        return 0
    if command == "summary" and len(args) == 5:
        part, tally, seconds, exit_code, budget = args
        tally_path = Path(tally)
        failed = failures(tally_path)
        for line in failed[:FAILURES_SHOWN]:
            print(f"gpu-check: {part}: FAILED {line}")
        if len(failed) > FAILURES_SHOWN:
            print(f"gpu-check: {part}: ... and {len(failed) - FAILURES_SHOWN} more (the log)")
        print(summary(part, tally_path, float(seconds), int(exit_code), int(budget)))
        return 0 if passed(tally_path, int(exit_code)) else 1
    if command == "ratios" and len(args) == 1:
        path = Path(args[0])
        lines = ratios(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []
        print("\n".join(lines) if lines else f"no benchmark timings in {path}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
