"""The plugin's options and Hypothesis settings, read once per session and validated.

One option group, ``--harness-*``, each with an ini twin; a bad value is a
``pytest.UsageError`` that names it, the rule and the choices. The harness's own
Hypothesis profiles (``harness-dev``, ``harness-ci``) are registered here and passed
to its items only: nothing is loaded globally.
"""

from __future__ import annotations

import functools
import os
import random

import pytest
from hypothesis import settings

from harness.errors import did_you_mean
from harness.load.project import spec_roots
from harness.registry import CHECK_NAMES, DTYPE_NAMES

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
DEFAULT_TIMEOUT = 60.0  # seconds: verify.EXAMPLE_TIMEOUT (importing verify imports torch)
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "TF_BUILD", "JENKINS_URL")

for _name, _options in PROFILES.items():
    # Their own names, from "default": Hypothesis' own profiles (ci included) stay as they
    # are, and nothing is loaded: a profile is loaded only by --hypothesis-profile.
    settings.register_profile(_name, parent=settings.get_profile("default"), **_options)



def add_options(parser: pytest.Parser) -> None:
    """The ``--harness-*`` option group and its ini twins."""
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
    max_examples = (
        "Examples Hypothesis draws per item, overriding the profile; 0 runs the specs' "
        "explicit examples only. Default: the profile's "
        f"(harness-dev: {PROFILES['harness-dev']['max_examples']}, harness-ci: "
        f"{PROFILES['harness-ci']['max_examples']})")
    timeout = ("Seconds one example may take before it fails as a hang; 0 disables. "
               f"Default: {DEFAULT_TIMEOUT:g}")
    for name, metavar, kind, text in (("max-examples", "INT", int, max_examples),
                                      ("timeout", "SECONDS", float, timeout)):
        dest = "harness_" + name.replace("-", "_")
        group.addoption(f"--harness-{name}", metavar=metavar, type=kind, default=None,
                        dest=dest, help=f"{text} (ini: {dest}).")
        parser.addini(dest, f"{text}.", default="")
    parser.addini("harness_specs", "Folders (or files) holding spec files. Default: specs",
                  type="paths", default=None)


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
        timeout = _number(config, "timeout", float)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_examples = _number(config, "max_examples", int)
        if self.max_examples is not None and self.max_examples < 0:
            raise pytest.UsageError(
                f"--harness-max-examples={self.max_examples} (or harness_max_examples) must be "
                f"at least 0 (0 runs the specs' explicit examples only)"
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


def _number(config: pytest.Config, name: str, kind: type) -> float | int | None:
    """``--harness-<name>``, else its ini twin (None where neither is given)."""
    value = config.getoption(f"harness_{name}")
    if value is not None:
        return value
    raw = str(config.getini(f"harness_{name}")).strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        what, example = ("an integer", "50") if kind is int else ("a number", "120")
        raise pytest.UsageError(f"harness_{name} = {raw!r} in the ini file is not {what} — "
                                f"give one, e.g. harness_{name} = {example}") from None


def _value(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"harness_{name}")
    return config.getini(f"harness_{name}") if value is None else value


def _listed(config: pytest.Config, name: str, allowed) -> tuple[str, ...]:
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
