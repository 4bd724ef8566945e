"""harness: verify PyTorch gradients against autograd, finite differences and gradcheck.

The names below are re-exported lazily (PEP 562), so that importing the pytest
plugin — and so ``pytest --help`` — does not import torch.
"""

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "CHECKS": "harness.checks",
    "Failure": "harness.report",
    "GradientMismatch": "harness.errors",
    "HarnessError": "harness.errors",
    "Input": "harness.spec",
    "Report": "harness.report",
    "Spec": "harness.spec",
    "SpecError": "harness.errors",
    "load_specs": "harness.load.files",
    "verify": "harness.verify",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from harness.checks import CHECKS as CHECKS
    from harness.errors import GradientMismatch as GradientMismatch
    from harness.errors import HarnessError as HarnessError
    from harness.errors import SpecError as SpecError
    from harness.load.files import load_specs as load_specs
    from harness.report import Failure as Failure
    from harness.report import Report as Report
    from harness.spec import Input as Input
    from harness.spec import Spec as Spec
    from harness.verify import verify as verify


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


class _Package(ModuleType):
    """Keeps an exported name from being replaced by the submodule of the same name.

    Importing ``harness.verify`` (the module) makes Python set the package attribute
    ``verify`` to that module, after which ``from harness import verify`` would give the
    module instead of the function. The function is kept.

    >>> import harness.verify
    >>> from harness import verify
    >>> callable(verify)
    True
    """

    def __setattr__(self, name: str, value: object) -> None:
        if (name in _EXPORTS and isinstance(value, ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
