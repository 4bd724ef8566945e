"""The numerics: the finite-difference oracle, the rounding-noise model, allowances and
the comparison. Above the spec model, below the checks; no check logic here."""
