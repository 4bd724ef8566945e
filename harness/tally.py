"""What the harness's items did, visibly: ``-v`` counts on each pass, and a summary line.

``Tally`` is registered as a plugin object by ``harness.plugin``; under pytest-xdist
it hears the reports of every worker. ``teststatus`` is the plugin's answer to
``pytest_report_teststatus``.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

SLOWEST_SHOWN = 3


def teststatus(report: pytest.TestReport):
    """``-v`` shows the examples a passing harness item ran and discarded (the plugin's
    ``pytest_report_teststatus``).

    Only for a pass: pytest's short summary shows the same word, and a failure's
    line there must read ``FAILED nodeid - first line of the message``.
    """
    if report.when != "call" or not report.passed:
        return None
    properties = dict(report.user_properties)
    if "harness_examples" not in properties:
        return None
    counts = f"{properties['harness_examples']} examples, {properties['harness_discarded']} " \
             f"discarded"
    if properties.get("harness_shrink_s"):
        counts += f", shrunk {properties['harness_shrink_s']:g} s"
    return "passed", ".", (f"PASSED ({counts})", {"green": True})


class Tally:
    """What the harness's items did in this session: a plugin object (registered in
    ``pytest_configure``) that hears every report, under pytest-xdist those of every
    worker, and writes the summary line."""

    def __init__(self) -> None:
        self.items: set[str] = set()
        self.benchmarks: set[str] = set()
        self.examples = 0
        self.discarded = 0
        self.checked = False  # whether any check item ran (and counted examples)
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        spec = properties.get("harness_spec")
        if spec is None:
            return
        self.seconds[spec] += report.duration
        kind = self.benchmarks if "harness_benchmark" in properties else self.items
        kind.add(report.nodeid)
        if report.when == "call" and "harness_examples" in properties:
            self.checked = True
            self.examples += properties["harness_examples"]
            self.discarded += properties.get("harness_discarded", 0)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        line = self.line()
        if line and config.get_verbosity() >= -1:
            terminalreporter.write_sep("-", line)

    def line(self) -> str | None:
        """``harness: 2 specs, 18 items, 340 examples (12 discarded); slowest: ...``"""
        if not self.seconds:
            return None
        parts = [_count(len(self.seconds), "spec")]
        if self.items:
            parts.append(_count(len(self.items), "item"))
        if self.checked:
            parts[-1] += (f", {_count(self.examples, 'example')} "
                          f"({self.discarded} discarded)")
        if self.benchmarks:
            parts.append(_count(len(self.benchmarks), "benchmark"))
        slowest = sorted(self.seconds.items(), key=lambda entry: -entry[1])[:SLOWEST_SHOWN]
        shown = ", ".join(f"{spec} {seconds:.1f} s" for spec, seconds in slowest)
        return f"harness: {', '.join(parts)}; slowest: {shown}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
