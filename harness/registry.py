"""Names known before torch is imported: the checks (in CHECKS order) and the dtypes."""

CHECK_DESCRIPTIONS = {
    "analytic": "autograd VJP vs the spec's backward formulas",
    "reference": "autograd VJP vs the reference's autograd VJP",
    "finite_difference": "autograd VJP vs the float64 finite-difference oracle",
    "gradcheck": "torch.autograd.gradcheck on float64 copies",
    "gradgradcheck": "torch.autograd.gradgradcheck",
    "taylor": "Taylor remainder converges at order 2",
    "forward_mode": "forward-mode AD vs reverse mode (dot-product test) and the spec's jvp",
    "devices": "CPU vs CUDA gradients agree",
}
CHECK_NAMES = tuple(CHECK_DESCRIPTIONS)
DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16")
