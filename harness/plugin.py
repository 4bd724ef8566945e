"""pytest plugin: spec files become items ``path::spec::check[device-dtype]``.

Registered through the ``pytest11`` entry point. torch is imported only when spec
files are collected, so ``pytest --help`` stays fast. The plugin leaves the rest of
the session alone: its Hypothesis profiles (``harness-dev``, ``harness-ci``) are
passed to its own items only, and a user's ``@given`` tests run as they would
without it. Under ``--benchmark-only`` or ``--benchmark-enable`` it also yields one
benchmark item per spec and device (``harness.bench.items``).
"""

from __future__ import annotations

import functools
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

from harness._compat import hypothesis_statistics, matches_python_files, message_repr
from harness.errors import GradientMismatch, SpecError
from harness.load.discovery import is_spec_file
from harness.load.project import spec_roots
from harness.registry import (
    CHECK_DESCRIPTIONS,
    CHECK_INFO,
    CHECK_NAMES,
    DTYPE_NAMES,
    CheckInfo,
    chosen_checks,
)

pytest_plugins = ["harness.bench.items"]  # the benchmark items and their summary

DEFAULTS = {
    "devices": "auto",
    "dtypes": "float64,float32",
    "checks": "all",
}
DEVICES = ("cpu", "cuda")
DEVICE_CHOICES = ("auto", *DEVICES)  # auto: the CPU, plus CUDA where it is available
PROFILES = {
    "harness-dev": {"max_examples": 20, "deadline": None},
    "harness-ci": {
        "max_examples": 50, "deadline": None, "derandomize": True, "database": None,
        "print_blob": True,
    },
}
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "TF_BUILD", "JENKINS_URL")
SHRINK_NOTICE_S = 5.0  # a check still shrinking after this long says so, once
SLOWEST_SHOWN = 3

for _name, _options in PROFILES.items():
    # Their own names, from "default": Hypothesis' own profiles (ci included) stay as they
    # are, and nothing is loaded: a profile is loaded only by --hypothesis-profile.
    settings.register_profile(_name, parent=settings.get_profile("default"), **_options)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "gradient harness (spec files)")
    for name, metavar, text in (
        ("devices", "LIST", "Devices to check on, comma-separated: cpu, cuda, or auto (the "
                            "CPU, plus CUDA where it is available); a device named but absent "
                            "gets its items skipped."),
        ("dtypes", "LIST", "Dtypes to check in: float64, float32, float16, bfloat16."),
        ("checks", "LIST", "Checks to run, comma-separated names from harness.CHECKS, or all."),
    ):
        group.addoption(
            f"--harness-{name}", metavar=metavar, default=None, dest=f"harness_{name}",
            help=f"{text} Default: {DEFAULTS[name]!r} (ini: harness_{name}).",
        )
        parser.addini(f"harness_{name}", f"{text} Default: {DEFAULTS[name]}",
                      default=DEFAULTS[name])
    group.addoption(
        "--harness-seed", metavar="INT", type=int, default=None, dest="harness_seed",
        help="Seed for the examples Hypothesis draws; a failure's Reproduce line gives it. "
             "Default: random per session, or derandomized under the harness-ci profile.",
    )
    group.addoption(
        "--harness-max-examples", metavar="INT", type=int, default=None,
        dest="harness_max_examples",
        help="Examples Hypothesis draws per item, overriding the profile; 0 runs the specs' "
             "explicit examples only. Default: the profile's "
             f"(harness-dev: {PROFILES['harness-dev']['max_examples']}, harness-ci: "
             f"{PROFILES['harness-ci']['max_examples']}).",
    )
    group.addoption(
        "--harness-timeout", metavar="SECONDS", type=float, default=60.0,
        dest="harness_timeout",
        help="Seconds one example may take before it fails as a hang; 0 disables. Default: 60.",
    )
    parser.addini("harness_specs", "Folders (or files) holding spec files. Default: specs",
                  type="paths", default=None)


@pytest.hookimpl(trylast=True)  # after Hypothesis' plugin has loaded --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    options = HarnessOptions(config)
    config.stash[OPTIONS] = options
    config.pluginmanager.register(Tally(), "harness-tally")
    for name, description in CHECK_DESCRIPTIONS.items():
        config.addinivalue_line(
            "markers", f"{name}: harness items of the {name} check ({description})"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput:
        _share_the_cores(int(workerinput.get("workercount", 1)))


def _share_the_cores(workers: int) -> None:
    """Each pytest-xdist worker gets its share of the cores for torch's threads.

    Every worker would otherwise start a thread per core: n workers, n^2 threads on
    n cores, and the small tensors of a spec pay for the switching. A lower setting
    (OMP_NUM_THREADS) is kept.
    """
    import torch

    share = max(1, (os.cpu_count() or 1) // max(workers, 1))
    if torch.get_num_threads() > share:
        torch.set_num_threads(share)


class HarnessOptions:
    """The plugin's options, read once and validated (conflicts are UsageErrors).

    ``settings`` are the Hypothesis settings of the harness's items: the
    ``harness-ci`` profile under a CI environment variable, else ``harness-dev``;
    or, when the user names one with ``--hypothesis-profile`` (which Hypothesis then
    loads for the whole session), that profile as loaded.
    """

    def __init__(self, config: pytest.Config):
        self._devices = _listed(config, "devices", DEVICE_CHOICES)
        self.dtypes = _listed(config, "dtypes", DTYPE_NAMES)
        checks = _value(config, "checks")
        self.checks = CHECK_NAMES if checks == "all" else _listed(config, "checks", CHECK_NAMES)
        self.profile, self.settings = _hypothesis_settings(config)
        workerinput = getattr(config, "workerinput", {})
        self.seed = config.getoption("harness_seed")
        if self.seed is None and not self.settings.derandomize:
            self.seed = workerinput.get("harness_seed", random.getrandbits(32))
        self.timeout = config.getoption("harness_timeout")
        self.max_examples = config.getoption("harness_max_examples")
        if self.max_examples is not None and self.max_examples < 0:
            raise pytest.UsageError(
                f"--harness-max-examples={self.max_examples} must be at least 0 (0 runs the "
                f"specs' explicit examples only)"
            )
        # -o harness_specs=... and friends: a rerun must collect the same specs
        self.overrides = tuple(o for o in config.getoption("override_ini") or ()
                               if o.startswith("harness_"))
        self.spec_paths = spec_roots(config)
        self.python_files = list(config.getini("python_files"))

    @functools.cached_property
    def devices(self) -> tuple[str, ...]:
        """The devices named, ``auto`` resolved (this imports torch: only at collection)."""
        if "auto" not in self._devices:
            return self._devices
        import torch

        auto = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
        resolved = [d for name in self._devices for d in (auto if name == "auto" else (name,))]
        return tuple(dict.fromkeys(resolved))

    @property
    def devices_shown(self) -> str:
        return ",".join(self._devices)


def _hypothesis_settings(config: pytest.Config) -> tuple[str, settings]:
    asked = config.getoption("hypothesis_profile", None)
    if asked:  # Hypothesis' plugin has loaded it (or refused an unknown name)
        return asked, settings.default
    in_ci = any(os.environ.get(variable) for variable in CI_VARIABLES)
    name = "harness-ci" if in_ci else "harness-dev"
    return name, settings.get_profile(name)


def _value(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"harness_{name}")
    return config.getini(f"harness_{name}") if value is None else value


def _listed(config: pytest.Config, name: str, allowed) -> tuple[str, ...]:
    from harness.errors import did_you_mean

    values = tuple(v.strip() for v in _value(config, name).split(",") if v.strip())
    if not values:
        raise pytest.UsageError(f"--harness-{name} is empty — give at least one of "
                                f"{', '.join(allowed)}")
    for value in values:
        if value not in allowed:
            raise pytest.UsageError(
                f"--harness-{name}={value!r} is not one of {', '.join(allowed)}"
                f"{did_you_mean(value, allowed)}"
            )
    return values


OPTIONS = pytest.StashKey[HarnessOptions]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Under pytest-xdist every worker draws with the controller's seed."""
    options = node.config.stash[OPTIONS]
    if options.seed is not None:
        node.workerinput["harness_seed"] = options.seed


def pytest_report_header(config: pytest.Config) -> str:
    from harness import __version__

    options = config.stash[OPTIONS]
    seed = "derandomized" if options.seed is None else f"seed={options.seed}"
    roots = ", ".join(os.path.relpath(p, config.rootpath) for p in options.spec_paths)
    return (
        f"harness {__version__}: devices={options.devices_shown} "
        f"dtypes={','.join(options.dtypes)} profile={options.profile} {seed} specs={roots}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """A spec file becomes a SpecFile (the one rule: ``harness.load.discovery.is_spec_file``).

    A spec module is the harness's alone: pytest's Module for it (collected because it
    was named on the command line) and DoctestModule (``--doctest-modules``) are
    dropped, so that a spec module that fails to import is one failing item, not a
    collection error that interrupts the session. A ``.py`` file named on the command
    line outside the spec folders is a spec module only if loading it gives specs (or
    fails); otherwise it stays pytest's, with its tests and doctests.
    """
    collected = yield
    options = parent.config.stash[OPTIONS]
    test_module = file_path.suffix == ".py" and matches_python_files(file_path,
                                                                     options.python_files)
    named = parent.session.isinitpath(file_path) and not test_module
    if not is_spec_file(file_path, options.spec_paths, named=named):
        return collected
    spec_file = SpecFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".py" and not test_module:
        if not is_spec_file(file_path, options.spec_paths) and not spec_file.entries:
            return collected  # named, and no spec module: a module of the user's
        collected = [node for node in collected if not isinstance(node, pytest.Module)]
    return [*collected, spec_file]


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


# ------------------------------------------------------------------------- what ran, visibly


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """``-v`` shows the examples a passing harness item ran and discarded.

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
