"""The pytest nodes of spec files: a collector per spec, an item per check x device x dtype,
and one failing item per spec that cannot load.

An item runs ``verify`` and shows a failure as the harness's message alone (its
first line is what pytest's short summary and JUnit XML show), reported at the
spec's own line.
"""

from __future__ import annotations

import functools
import os

import pytest

from harness._compat import hypothesis_statistics, message_repr
from harness.errors import GradientMismatch, SpecError
from harness.plugin_options import DEFAULTS, OPTIONS, HarnessOptions
from harness.registry import CHECK_INFO, CheckInfo, chosen_checks

SHRINK_NOTICE_S = 5.0  # a check still shrinking after this long says so, once


class SpecFile(pytest.File):
    """A spec file: one collector per spec, one failing item per spec that cannot load."""

    @functools.cached_property
    def entries(self) -> list:
        """The file's specs and Broken entries (loaded once; never raises)."""
        from harness.load.files import Broken, load_file

        try:
            return load_file(self.path, rootdir=self.config.rootpath)
        except Exception as error:  # never interrupt the session: the file is its own item
            where = os.path.relpath(self.path, self.config.rootpath)
            return [Broken(self.path.stem, SpecError(
                f"the file could not be loaded: {type(error).__name__}: {error} — fix it; "
                f"the other spec files still load", path=where, spec=self.path.stem))]

    def collect(self):
        from harness.bench import items as bench_items
        from harness.load.files import Broken

        only_benchmarks = bench_items.benchmark_only(self.config)
        for entry in self.entries:
            if isinstance(entry, Broken):
                item = BrokenBenchmarkItem if only_benchmarks else BrokenSpecItem
                yield item.create(self, entry)
            else:
                yield SpecCollector.from_parent(self, name=entry.name, spec=entry)


class SpecCollector(pytest.Collector):
    """One spec: an item per check x device x dtype, and a benchmark per device if timing."""

    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self):
        from harness.bench import items as bench_items

        options = self.config.stash[OPTIONS]
        if not bench_items.benchmark_only(self.config):
            yield from self._check_items(options)
        if bench_items.timing(self.config) and self.spec.differentiable:
            for device in options.devices:
                yield bench_items.BenchmarkItem.create(self, self.spec, device)

    def _check_items(self, options: HarnessOptions):
        for check_name in chosen_checks(self.spec):
            check = CHECK_INFO[check_name]
            if check_name not in options.checks or check.needs_reason(self.spec):
                continue
            for device, dtype in _variants(check, self.spec, options):
                yield SpecItem.from_parent(
                    self, name=f"{check_name}[{device}-{dtype}]" if dtype != "float64" or
                    not check.float64_only else f"{check_name}[{device}]",
                    spec=self.spec, check=check_name, device=device, dtype=dtype,
                )


def _variants(check: CheckInfo, spec, options):
    dtypes = ["float64"] if check.float64_only else [
        d for d in options.dtypes if d in spec.dtypes]
    for device in options.devices:
        for dtype in dtypes:
            if check.skip_reason(spec, device, dtype) is None:
                yield device, dtype


class SpecItem(pytest.Item):
    """One check of one spec on one device in one dtype: ``verify`` over drawn examples."""

    def __init__(self, *, spec, check: str, device: str, dtype: str, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.check, self.device, self.dtype = spec, check, device, dtype
        self.add_marker(check)
        self.user_properties.append(("harness_spec", self.parent.nodeid))

    def runtest(self) -> None:
        import torch

        from harness.verify import verify

        options = self.config.stash[OPTIONS]
        notice = _ShrinkNotice(self)
        with hypothesis_statistics(self):
            report = verify(
                self.spec, checks=[self.check], device=self.device,
                dtype=getattr(torch, self.dtype), max_examples=options.max_examples,
                seed=options.seed, timeout=options.timeout or None,
                settings=options.settings, on_shrink=notice,
            )
        self.user_properties += [("harness_examples", report.examples),
                                 ("harness_discarded", report.discarded)]
        if notice.seconds:
            self.user_properties.append(("harness_shrink_s", round(notice.seconds, 1)))
        if self.check in report.skipped:
            raise pytest.skip.Exception(report.skipped[self.check], _use_item_location=True)
        if not report.passed:
            command = self._reproduce(options)
            failures = [failure.with_reproduce(command) for failure in report.failures]
            from harness.report import message

            raise GradientMismatch("\n\n".join(message(failure) for failure in failures))

    def _reproduce(self, options: HarnessOptions) -> str:
        """The command that reruns this item on the same examples: every option that
        changes the draw or whether the item is collected at all."""
        parts = [f'pytest "{self.nodeid}"']
        if self.dtype not in DEFAULTS["dtypes"].split(","):  # not collected by default
            parts.append(f"--harness-dtypes={self.dtype}")
        if options.seed is not None:
            parts.append(f"--harness-seed={options.seed}")
        if options.max_examples is not None:
            parts.append(f"--harness-max-examples={options.max_examples}")
        parts += [f'-o "{override}"' for override in options.overrides]
        parts.append(f"--hypothesis-profile={options.profile}")
        return " ".join(parts)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (GradientMismatch, SpecError)):
            return message_repr(str(excinfo.value), self.spec.path, self.spec.line)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.spec.path, (self.spec.line or 1) - 1, f"{self.spec.name}::{self.name}"


class _ShrinkNotice:
    """Says once, on the terminal, that a check has been shrinking a failure for a while.

    Hypothesis shrinks a failing example before reporting it, which can take tens of
    seconds with large inputs; without a word the run looks hung. Under
    pytest-xdist the workers have no terminal: the time shows in ``-v`` instead.
    """

    def __init__(self, item: pytest.Item):
        self.item = item
        self.seconds = 0.0
        self.said = False

    def __call__(self, seconds: float) -> None:
        self.seconds = max(self.seconds, seconds)
        if self.said or seconds < SHRINK_NOTICE_S:
            return
        self.said = True
        config = self.item.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None or hasattr(config, "workerinput"):
            return
        from harness.verify import SHRINK_SECONDS

        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"{self.item.nodeid}: found a failing example {seconds:.0f} s ago, shrinking "
                f"it to a minimal one (at most {SHRINK_SECONDS:g} s)...", yellow=True)


class BrokenSpecItem(pytest.Item):
    """A spec that failed to load: one failing item, the rest of the file still runs."""

    def __init__(self, *, error: SpecError, **kwargs):
        super().__init__(**kwargs)
        self.error = error
        self.user_properties.append(("harness_spec", self.nodeid))

    @classmethod
    def create(cls, parent: pytest.Collector, entry) -> BrokenSpecItem:
        return cls.from_parent(parent, name=entry.name, error=entry.error)

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecError):
            return message_repr(str(excinfo.value), self.error.path, self.error.line)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.error.line or 1) - 1, f"{self.name} (invalid spec)"


class BrokenBenchmarkItem(BrokenSpecItem):
    """A spec that failed to load, under ``--benchmark-only``: it fails, as it does
    without benchmarks, instead of being skipped as a non-benchmark.

    pytest-benchmark skips, under ``--benchmark-only``, every item whose
    ``fixturenames`` lack ``benchmark``; this item has nothing to time (so it sets
    up no fixture) but counts as one.
    """

    fixturenames = ("benchmark",)
