"""How small a gradient error each check catches: python tests/measure_sensitivity.py

A backward is made wrong by a relative error r (gradient = true * (1 + r)) for
r = 1e-1, 1e-2, ..., 1e-12, and each check runs on it over several seeds:

- ``analytic``: a spec-level backward formula scaled by (1 + r), plain-torch forward;
- ``finite_difference``, ``gradcheck`` (the harness's check) and ``taylor``: a custom
  ``autograd.Function`` whose backward is scaled by (1 + r), no formula;
- ``torch.autograd.gradcheck`` called directly, with its default tolerances, on the
  same Function at float64 points drawn like the harness's.

A cell is the smallest r caught in every seed (and every larger r too), the same
in at least one seed, and how many seeds fail at r = 0 (a right gradient: any
failure there is a false alarm). The functions: an elementwise one on a domain
holding 0 (Hypothesis draws x = 0 often, where f(x) ~ x has no rounding offset,
so the Taylor test sees errors far below eps there), the same on [1, 3], away
from 0, and a reduction through a matrix product.
Options: --seeds N (default 3), --max-examples N (default 15), --checks NAMES (comma-
separated, default: all four), --elements N (every example at N input elements — n = N,
or N // 3 rows of tanh(x @ W) — where large inputs take the directional oracle; torch's
gradcheck, which would build the whole Jacobian, is left out there).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from quick import NO_SHRINK
from torch.autograd import Function

from harness import Input, Spec, verify

ERRORS = tuple(10.0**-k for k in range(1, 13))
DTYPES = {"float64": torch.float64, "float32": torch.float32}
HARNESS_CHECKS = ("analytic", "finite_difference", "gradcheck", "taylor")


def _scaled_function(f, df, r: float):
    """A forward ``x -> Function.apply(x)`` for y = f(x) whose backward is df * (1 + r)."""

    class Scaled(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return f(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return df(x, grad) * (1 + r)

    return Scaled.apply


def _exp_sin(x):
    return torch.exp(x / 2) * torch.sin(x)


def _exp_sin_vjp(x, grad):
    return grad * torch.exp(x / 2) * (torch.sin(x) / 2 + torch.cos(x))


_WEIGHTS = torch.linspace(-1.0, 1.0, 12, dtype=torch.float64).reshape(3, 4)


def _tanh_matmul(x):
    return torch.tanh(x @ _WEIGHTS.to(x.dtype))


def _tanh_matmul_vjp(x, grad):
    y = torch.tanh(x @ _WEIGHTS.to(x.dtype))
    return (grad * (1 - y**2)) @ _WEIGHTS.to(x.dtype).mT


FUNCTIONS = {
    # name: (forward, its VJP, input)
    "exp(x/2) sin(x), x in [-3, 3]": (_exp_sin, _exp_sin_vjp,
                                      Input(("n",), low=-3.0, high=3.0)),
    "exp(x/2) sin(x), x in [1, 3]": (_exp_sin, _exp_sin_vjp, Input(("n",), low=1.0, high=3.0)),
    "tanh(x @ W), x (n, 3)": (_tanh_matmul, _tanh_matmul_vjp,
                              Input(("n", 3), low=-2.0, high=2.0)),
}


def wrong_spec(function: str, r: float, *, formula: bool, elements: int | None = None) -> Spec:
    """The spec whose gradient is off by a relative ``r``: in a formula or in a Function;
    with ``elements``, of that many input elements."""
    f, df, spec_input = FUNCTIONS[function]
    name = f"off_by_{r:.0e}".replace("+", "")
    dims = {}
    if elements is not None:
        n = elements if len(spec_input.shape) == 1 else elements // 3
        dims = {"n": (n, n)}
    if formula:
        return Spec(forward=f, inputs={"x": spec_input}, name=name, dims=dims,
                    backward={"x": lambda grad, x: df(x, grad) * (1 + r)})
    scaled = _scaled_function(f, df, r)
    return Spec(forward=lambda x: scaled(x), inputs={"x": spec_input}, name=name, dims=dims)


def harness_catches(check: str, function: str, r: float, dtype: str, seed: int,
                    max_examples: int, elements: int | None = None) -> bool:
    spec = wrong_spec(function, r, formula=check == "analytic", elements=elements)
    report = verify(spec, checks=[check], dtype=DTYPES[dtype], seed=seed,
                    max_examples=max_examples, settings=NO_SHRINK)  # pass or fail counts
    return not report.passed


def torch_gradcheck_catches(function: str, r: float, seed: int, points: int = 15) -> bool:
    """torch.autograd.gradcheck with its defaults (eps=1e-6, atol=1e-5, rtol=1e-3)."""
    f, df, spec_input = FUNCTIONS[function]
    scaled = _scaled_function(f, df, r)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(points):
        n = int(torch.randint(1, 7, (), generator=generator))
        shape = (n,) if len(spec_input.shape) == 1 else (n, 3)
        x = spec_input.low + (spec_input.high - spec_input.low) * torch.rand(
            shape, generator=generator, dtype=torch.float64)
        if not torch.autograd.gradcheck(scaled, (x.requires_grad_(),), raise_exception=False):
            return True
    return False


def smallest(caught: dict[float, bool]) -> str:
    """The smallest r such that it and every larger r are caught, as '1e-06', or 'none'."""
    found = "none"
    for r in ERRORS:
        if not caught[r]:
            break
        found = f"{r:.0e}"
    return found


def measure(seeds: int, max_examples: int, checks=HARNESS_CHECKS,
            elements: int | None = None) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for function in FUNCTIONS:
        for check in checks:
            for dtype in DTYPES:
                if check == "gradcheck" and dtype != "float64":
                    continue
                catches = partial(_harness_catches, check, function, dtype, max_examples,
                                  elements)
                rows.append(_row(function, check, dtype, seeds, catches))
        if elements is None:
            rows.append(_row(function, "torch.autograd.gradcheck (defaults)", "float64",
                             seeds, partial(torch_gradcheck_catches, function)))
    return rows


def _harness_catches(check, function, dtype, max_examples, elements, r, seed) -> bool:
    return harness_catches(check, function, r, dtype, seed, max_examples, elements)


def _row(function: str, check: str, dtype: str, seeds: int, catches) -> tuple[str, ...]:
    always, ever = {}, {}
    for r in ERRORS:
        results = [catches(r, seed) for seed in range(seeds)]
        always[r], ever[r] = all(results), any(results)
    false_alarms = sum(catches(0.0, seed) for seed in range(seeds))
    row = (function, check, dtype, smallest(always), smallest(ever), f"{false_alarms}/{seeds}")
    print(" | ".join(row), flush=True)
    return row


def table(rows) -> str:
    header = ("function", "check", "dtype", "smallest r caught (every seed)",
              "(some seed)", "fails at r = 0")
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
              for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-examples", type=int, default=15)
    parser.add_argument("--checks", default=",".join(HARNESS_CHECKS))
    parser.add_argument("--elements", type=int, default=None)
    options = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = measure(options.seeds, options.max_examples, options.checks.split(","),
                   options.elements)
    print()
    print(table(rows))
    print(f"\n{options.seeds} seeds, {options.max_examples} examples each, "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
