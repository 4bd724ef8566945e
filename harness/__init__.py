"""harness: verify PyTorch gradients against autograd, finite differences and gradcheck."""

from harness.checks import CHECKS
from harness.errors import GradientMismatch, HarnessError, SpecError
from harness.loader import load_specs
from harness.report import Failure, Report
from harness.spec import Input, Spec
from harness.verify import verify

__version__ = "0.1.0"

__all__ = [
    "CHECKS",
    "Failure",
    "GradientMismatch",
    "HarnessError",
    "Input",
    "Report",
    "Spec",
    "SpecError",
    "load_specs",
    "verify",
]
