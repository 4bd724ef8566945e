"""The exact words the harness's messages list, pinned once for every test of a message.

Written out, not taken from the harness: a change to what a message says must show
up as a change here.
"""

CHECK_NAMES = (
    "analytic, reference, finite_difference, gradcheck, gradgradcheck, taylor, forward_mode, "
    "devices, layouts, batched, undefined"
)
DTYPE_NAMES = "float64, float32, float16, bfloat16, complex128, complex64"
DOCS = "(the whitelist: python -m harness formulas)"
