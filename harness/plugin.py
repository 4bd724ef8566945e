"""pytest plugin: spec files become items ``path::spec::check[device-dtype]``.

Registered through the ``pytest11`` entry point. torch is imported only when spec
files are collected, so ``pytest --help`` stays fast.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from _pytest._code.code import (
    ExceptionChainRepr,
    ReprEntryNative,
    ReprFileLocation,
    ReprTraceback,
)
from hypothesis import settings

from harness.errors import GradientMismatch, SpecError
from harness.names import CHECK_DESCRIPTIONS, CHECK_NAMES, DTYPE_NAMES

DEFAULTS = {
    "devices": "cpu,cuda",
    "dtypes": "float64,float32",
    "checks": "all",
}
DEVICES = ("cpu", "cuda")
PROFILES = {
    "dev": {"max_examples": 20, "deadline": None},
    "ci": {
        "max_examples": 50, "deadline": None, "derandomize": True, "database": None,
        "print_blob": True,
    },
}
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "TF_BUILD", "JENKINS_URL")

for _name, _options in PROFILES.items():
    # From "default", not from whichever profile Hypothesis loaded (its own ci, under CI).
    settings.register_profile(_name, parent=settings.get_profile("default"), **_options)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "gradient harness (spec files)")
    for name, metavar, text in (
        ("devices", "LIST", "Devices to check on, comma-separated: cpu, cuda."),
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
             "Default: random per session, or derandomized under the ci profile.",
    )
    group.addoption(
        "--harness-max-examples", metavar="INT", type=int, default=None,
        dest="harness_max_examples",
        help="Examples Hypothesis draws per item, overriding the profile; 0 runs the specs' "
             "explicit examples only. Default: the profile's "
             f"(dev: {PROFILES['dev']['max_examples']}, ci: {PROFILES['ci']['max_examples']}).",
    )
    group.addoption(
        "--harness-timeout", metavar="SECONDS", type=float, default=60.0,
        dest="harness_timeout",
        help="Seconds one example may take before it fails as a hang; 0 disables. Default: 60.",
    )
    parser.addini("harness_specs", "Folders (or files) holding spec files. Default: specs",
                  type="paths", default=None)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None):
        in_ci = any(os.environ.get(variable) for variable in CI_VARIABLES)
        settings.load_profile("ci" if in_ci else "dev")
    options = HarnessOptions(config)
    config.stash[OPTIONS] = options
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
    """The plugin's options, read once and validated (conflicts are UsageErrors)."""

    def __init__(self, config: pytest.Config):
        self.devices = _listed(config, "devices", DEVICES)
        self.dtypes = _listed(config, "dtypes", DTYPE_NAMES)
        checks = _value(config, "checks")
        self.checks = CHECK_NAMES if checks == "all" else _listed(config, "checks", CHECK_NAMES)
        workerinput = getattr(config, "workerinput", {})
        self.seed = config.getoption("harness_seed")
        if self.seed is None and not settings().derandomize:
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
        paths = config.getini("harness_specs") or [config.rootpath / "specs"]
        self.spec_paths = tuple(Path(p).resolve() for p in paths)

    def covers(self, path: Path) -> bool:
        path = path.resolve()
        return any(path == root or root in path.parents for root in self.spec_paths)


def _value(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"harness_{name}")
    return config.getini(f"harness_{name}") if value is None else value


def _listed(config: pytest.Config, name: str, allowed) -> tuple[str, ...]:
    from harness.suggest import did_you_mean

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
    profile = settings.get_current_profile_name()
    seed = "derandomized" if options.seed is None else f"seed={options.seed}"
    roots = ", ".join(os.path.relpath(p, config.rootpath) for p in options.spec_paths)
    return (
        f"harness {__version__}: devices={','.join(options.devices)} "
        f"dtypes={','.join(options.dtypes)} profile={profile} {seed} specs={roots}"
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    options = parent.config.stash[OPTIONS]
    spec_like = file_path.suffix in (".toml", ".py") and file_path.name != "conftest.py"
    hidden = file_path.name.startswith(("_", "."))
    if spec_like and not hidden and options.covers(file_path):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class SpecFile(pytest.File):
    def collect(self):
        from harness.loader import Broken, load_file

        for entry in load_file(self.path):
            if isinstance(entry, Broken):
                yield BrokenSpecItem.from_parent(self, name=entry.name, error=entry.error)
            else:
                yield SpecCollector.from_parent(self, name=entry.name, spec=entry)


class SpecCollector(pytest.Collector):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self):
        from harness.checks import CHECKS

        options = self.config.stash[OPTIONS]
        for check_name in self.spec.checks or tuple(CHECKS):
            check = CHECKS[check_name]
            if check_name not in options.checks or check.needs(self.spec):
                continue
            for device, dtype in _variants(check, self.spec, options):
                yield SpecItem.from_parent(
                    self, name=f"{check_name}[{device}-{dtype}]" if dtype != "float64" or
                    not check.float64_only else f"{check_name}[{device}]",
                    spec=self.spec, check=check_name, device=device, dtype=dtype,
                )


def _variants(check, spec, options):
    devices = [d for d in options.devices if d == "cuda" or check.name != "devices"]
    dtypes = ["float64"] if check.float64_only else [
        d for d in options.dtypes if d in spec.dtypes]
    for device in devices:
        for dtype in dtypes:
            if check.skip_reason(spec, device, dtype) is None:
                yield device, dtype


class SpecItem(pytest.Item):
    def __init__(self, *, spec, check: str, device: str, dtype: str, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.check, self.device, self.dtype = spec, check, device, dtype
        self.add_marker(check)

    def runtest(self) -> None:
        import torch

        from harness.verify import verify

        options = self.config.stash[OPTIONS]
        report = verify(
            self.spec, checks=[self.check], device=self.device,
            dtype=getattr(torch, self.dtype), max_examples=options.max_examples,
            seed=options.seed, timeout=options.timeout or None,
        )
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
        parts.append(f"--hypothesis-profile={settings.get_current_profile_name()}")
        return " ".join(parts)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (GradientMismatch, SpecError)):
            return message_repr(str(excinfo.value), self.spec.path, self.spec.line)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.spec.path, (self.spec.line or 1) - 1, f"{self.spec.name}::{self.name}"


class BrokenSpecItem(pytest.Item):
    """A spec that failed to load: one failing item, the rest of the file still runs."""

    def __init__(self, *, error: SpecError, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecError):
            return message_repr(str(excinfo.value), self.error.path, self.error.line)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.error.line or 1) - 1, f"{self.name} (invalid spec)"


def message_repr(text: str, path: str | None, line: int | None) -> ExceptionChainRepr:
    """A failure shown as its message alone; the first line is the crash message.

    Built from pytest's own repr classes so that pytest-xdist and --junitxml carry
    the first line as the failure's message.
    """
    lines = text.splitlines() or [""]
    crash = ReprFileLocation(str(path), line or 0, lines[0])
    traceback = ReprTraceback([ReprEntryNative([f"{line}\n" for line in lines])], None, "native")
    return ExceptionChainRepr([(traceback, crash, None)])
