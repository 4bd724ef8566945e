"""What each check is, known before torch is imported: the plugin reads it at collection.

Each check's name (in CHECKS order), its description, what a spec needs for it to
apply, the dtypes and devices it runs in. ``harness.checks`` binds each to the
function that runs it; nothing here imports torch.

>>> CHECK_INFO["gradcheck"].skip_reason(object(), "cpu", "float32")
'gradcheck runs in float64 (or complex128) only'
>>> CHECK_INFO["devices"].devices
('cuda',)
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64")
LOW_PRECISION = ("float16", "bfloat16")  # where finite differences mean nothing
COMPLEX = ("complex128", "complex64")
# The dtype whose precision each item dtype has (a complex item's parts are real).
REAL_PRECISION = {"complex128": "float64", "complex64": "float32"}
DEVICE_NAMES = ("cpu", "cuda")
# The contract checks (layouts, batched, undefined) compare autograd with itself: a
# broken contract shows at any example with dims above 1, not at rare values, so a
# few examples decide (and keep the spec library's run short).
CONTRACT_EXAMPLES = 5
# A spec attribute a check needs, and what the skip says when the spec lacks it.
NEEDS = {
    "backward": "the spec has no backward formulas",
    "reference": "the spec has no reference",
    "twice_differentiable": "the spec is not twice_differentiable",
    "several_outputs": "the forward returns one tensor: no cotangent can be left undefined",
}


@dataclass(frozen=True)
class CheckInfo:
    """A check's metadata: when it applies, in which dtypes, on which devices."""

    name: str
    description: str
    needs: str | None = None  # a key of NEEDS: the spec attribute that must be set
    float64_only: bool = False
    low_precision: bool = False  # meaningful in float16/bfloat16
    devices: tuple[str, ...] = DEVICE_NAMES
    max_examples: int | None = None  # at most this many drawn examples (None: the profile's)

    def needs_reason(self, spec) -> str | None:
        """Why the spec does not have what this check needs, or None when it does."""
        if self.needs is None or getattr(spec, self.needs):
            return None
        return NEEDS[self.needs]

    def skip_reason(self, spec, device: str, dtype: str) -> str | None:
        """Why this check does not apply to ``spec`` here, or None when it does."""
        if self.float64_only and REAL_PRECISION.get(dtype, dtype) != "float64":
            return f"{self.name} runs in float64 (or complex128) only"
        if dtype in LOW_PRECISION and not self.low_precision:
            return f"{self.name} is meaningless in {dtype}"
        if device.partition(":")[0] not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)} only"
        return self.needs_reason(spec)


REGISTRY = (
    CheckInfo("analytic", "autograd VJP vs the spec's backward formulas", needs="backward",
              low_precision=True),
    CheckInfo("reference", "autograd VJP vs the reference's autograd VJP", needs="reference",
              low_precision=True),
    CheckInfo("finite_difference", "autograd VJP vs the float64 finite-difference oracle"),
    CheckInfo("gradcheck", "torch.autograd.gradcheck on float64 copies", float64_only=True),
    CheckInfo("gradgradcheck", "torch.autograd.gradgradcheck", needs="twice_differentiable",
              float64_only=True),
    CheckInfo("taylor", "Taylor remainder converges at order 2"),
    CheckInfo("forward_mode",
              "forward-mode AD vs reverse mode (dot-product test) and the spec's jvp"),
    CheckInfo("devices", "CPU vs CUDA gradients agree", low_precision=True, devices=("cuda",)),
    CheckInfo("layouts", "the same gradients with inputs and cotangents in other memory layouts, "
              "and autograd's contract kept", low_precision=True, max_examples=CONTRACT_EXAMPLES),
    CheckInfo("batched", "the VJP (and JVP) under torch.func.vmap vs single calls",
              low_precision=True, max_examples=CONTRACT_EXAMPLES),
    CheckInfo("undefined", "each output's gradient left undefined acts as a zero one",
              needs="several_outputs", low_precision=True, max_examples=CONTRACT_EXAMPLES),
)
CHECK_INFO = {info.name: info for info in REGISTRY}
CHECK_NAMES = tuple(CHECK_INFO)
CHECK_DESCRIPTIONS = {info.name: info.description for info in REGISTRY}


def chosen_checks(spec) -> tuple[str, ...]:
    """The checks a spec names (its ``checks``), or every check, in CHECKS order."""
    return tuple(spec.checks or CHECK_NAMES)
