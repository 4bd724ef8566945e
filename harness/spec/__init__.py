"""The spec model: Input and Spec, validated at construction, and their examples.

Layer: above errors and the registry, below everything that reads specs.
``harness.spec`` re-exports the names other layers use.
"""

from harness.spec.deferral import deferring_errors
from harness.spec.input import Input
from harness.spec.model import Spec

__all__ = ["Input", "Spec", "deferring_errors"]
