"""Forward/backward timing of a spec, used by ``benchmarks/`` and ``bench-plot``.

The backward pass is timed alone: the inputs are generated once (a fixed seed),
the forward runs once to build the graph, a cotangent is fixed, and each timed
call is ``torch.autograd.grad(..., retain_graph=True)``, synchronised on CUDA.
The forward is timed as it runs before a backward (the graph is recorded).

Benchmark dims are the spec's ``benchmark`` sizes; a dim not given there gets
``DEFAULT_SCALE`` times its declared maximum, shrunk (never below that maximum)
until every input holds at most ``ELEMENT_BUDGET`` elements. A device that is
missing or a size that runs out of memory raises ``BenchmarkSkipped`` with the
reason, never a crash.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.bench.timing import memory_guard, synchronize, time_calls
from harness.checks.evaluate import arguments, leaves_of, prepared
from harness.checks.evaluate import forward as checked_forward
from harness.errors import BenchmarkSkipped
from harness.spec import Input, Spec
from harness.spec.examples import Example, cotangent
from harness.spec.input import leaf_names
from harness.spec.options import MEMORY_BUDGET
from harness.strategies import generated_values

DEFAULT_SCALE = 4  # benchmark size of an undeclared dim: this many times its declared max
ELEMENT_BUDGET = MEMORY_BUDGET  # elements per input, as for verification
DEFAULT_SEED = 0
DEVICES = ("cpu", "cuda")
WARMUP_ROUNDS = 3
OVERHEAD_FACTOR = 3.0  # a backward under this many empty backwards is mostly fixed cost


def device_skip_reason(device: str) -> str | None:
    """Why ``device`` cannot run benchmarks here, or None when it can.

    >>> device_skip_reason("cpu") is None
    True
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        build = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
        return f"CUDA not available (torch {torch.__version__}, {build})"
    return None


def benchmark_dtype(spec: Spec) -> torch.dtype:
    """float32 when the spec is checked in it (the dtype models train in), else its first dtype.

    >>> from harness.spec import Input
    >>> benchmark_dtype(Spec(forward=lambda x: x, inputs={"x": Input()}, dtypes=["float64"]))
    torch.float64
    """
    name = "float32" if "float32" in spec.dtypes else spec.dtypes[0]
    return getattr(torch, name)


def input_elements(spec: Spec, dims: Mapping[str, int]) -> dict[str, int]:
    """Elements of each input at ``dims``.

    >>> from harness.spec import Input
    >>> spec = Spec(forward=lambda x, w: x @ w, inputs={"x": Input(("n", "d")),
    ...             "w": Input(("d", 1))})
    >>> input_elements(spec, {"n": 10, "d": 3})
    {'x': 30, 'w': 3}
    """
    return {name: math.prod(value.resolve(dims)) for name, value in spec.inputs.items()}


def benchmark_dims(
    spec: Spec, *, scale: int = DEFAULT_SCALE, budget: int = ELEMENT_BUDGET
) -> dict[str, int]:
    """The dims a spec is benchmarked at.

    The spec's ``benchmark`` sizes are kept as given; every other dim starts at
    ``scale`` times its declared maximum and is halved (not below that maximum)
    while an input would hold more than ``budget`` elements.

    >>> from harness.spec import Input
    >>> spec = Spec(forward=lambda a: a.sum(), inputs={"a": Input(("n", "n"))},
    ...             dims={"n": (1, 600)})
    >>> benchmark_dims(spec)  # 2400**2 and 1200**2 are over 10**6 elements
    {'n': 600}
    """
    fixed = dict(spec.benchmark)
    floors = {name: high for name, (_, high) in spec.dims.items()}
    dims = {name: fixed.get(name, high * scale) for name, high in floors.items()}
    while (name := _dim_to_halve(spec, dims, fixed, floors, budget)) is not None:
        dims[name] = max(floors[name], dims[name] // 2)
    return dims


def _dim_to_halve(spec, dims, fixed, floors, budget) -> str | None:
    """The largest shrinkable dim of the first input over budget, if any."""
    for name, elements in input_elements(spec, dims).items():
        if elements <= budget:
            continue
        free = [d for d in spec.inputs[name].dim_names if d not in fixed and dims[d] > floors[d]]
        if free:
            return max(free, key=dims.__getitem__)
    return None


@dataclass(frozen=True)
class Measurement:
    """Forward and backward times of one spec at one size, device and dtype.

    ``forward_s`` and ``backward_s`` are medians; the minima, where known, tell a
    ratio that holds from one inflated by a busy machine (noise only adds time).

    >>> m = Measurement("cube", "cpu", "float32", {"n": 8}, 8, forward_s=1e-5, backward_s=3e-5)
    >>> round(m.ratio, 6), m.ratio_min
    (3.0, None)
    """

    spec: str
    device: str
    dtype: str
    dims: dict[str, int]
    input_elements: int
    forward_s: float
    backward_s: float
    forward_min_s: float | None = None
    backward_min_s: float | None = None

    @property
    def ratio(self) -> float:
        """Backward over forward median (the cheap-gradient principle bounds it by ~3-5)."""
        return _ratio(self.backward_s, self.forward_s)

    @property
    def ratio_min(self) -> float | None:
        """Backward over forward minimum, when both are known."""
        if self.forward_min_s is None or self.backward_min_s is None:
            return None
        return _ratio(self.backward_min_s, self.forward_min_s)

    def extra_info(self) -> dict[str, Any]:
        """JSON-ready fields for pytest-benchmark's ``benchmark.extra_info``."""
        return {
            "forward_s": self.forward_s,
            "backward_s": self.backward_s,
            "ratio": self.ratio,
            "forward_min_s": self.forward_min_s,
            "backward_min_s": self.backward_min_s,
            "ratio_min": self.ratio_min,
            "input_elements": self.input_elements,
            "dims": dict(self.dims),
            "device": self.device,
            "dtype": self.dtype,
        }


def _ratio(backward_s: float, forward_s: float) -> float:
    return backward_s / forward_s if forward_s > 0 else math.inf


@dataclass
class BackwardRun:
    """A spec's graph, built once at fixed inputs, ready to time forward and backward."""

    spec: Spec
    example: Example  # the dims, params and list lengths the run is at
    device: str
    dtype: torch.dtype
    values: dict[str, torch.Tensor]
    outputs: tuple[torch.Tensor, ...]  # the differentiable outputs that need a gradient
    grad_outputs: tuple[torch.Tensor, ...]
    leaves: list[torch.Tensor]

    @property
    def dims(self) -> dict[str, int]:
        return self.example.dims

    def forward(self) -> Any:
        """One forward pass (the graph is recorded, as before a backward), synchronised."""
        with torch.enable_grad():
            result = self.spec.forward(arguments(self.spec, self.values, self.example))
        synchronize(self.device)
        return result

    def backward(self) -> tuple[torch.Tensor | None, ...]:
        """One backward pass through the retained graph, synchronised."""
        grads = torch.autograd.grad(
            self.outputs, self.leaves, self.grad_outputs, retain_graph=True, allow_unused=True
        )
        synchronize(self.device)
        return grads

    @property
    def input_elements(self) -> int:
        return sum(value.numel() for value in self.values.values())

    def measurement(
        self, forward_s: float, backward_s: float,
        forward_min_s: float | None = None, backward_min_s: float | None = None,
    ) -> Measurement:
        """These times (medians, and minima if known), labelled with this run's spec,
        device, dtype and size."""
        return Measurement(
            spec=str(self.spec.name), device=self.device,
            dtype=str(self.dtype).removeprefix("torch."), dims=dict(self.dims),
            input_elements=self.input_elements, forward_s=forward_s, backward_s=backward_s,
            forward_min_s=forward_min_s, backward_min_s=backward_min_s,
        )


def prepare(
    spec: Spec,
    dims: Mapping[str, int] | None = None,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    seed: int = DEFAULT_SEED,
    warmup: int = WARMUP_ROUNDS,
) -> BackwardRun:
    """Inputs, graph and cotangent for ``spec`` at ``dims`` (default: ``benchmark_dims``),
    then ``warmup`` forward and backward passes.

    >>> from harness.spec import Input
    >>> spec = Spec(forward=lambda x: x.sin().sum(), inputs={"x": Input(("n",))}, name="s")
    >>> run = prepare(spec, {"n": 1000})
    >>> run.dims, run.input_elements, run.backward()[0].shape
    ({'n': 1000}, 1000, torch.Size([1000]))
    """
    reason = device_skip_reason(device)
    if reason:
        raise BenchmarkSkipped(reason)
    dims = dict(benchmark_dims(spec) if dims is None else dims)
    dtype = benchmark_dtype(spec) if dtype is None else dtype
    with memory_guard(f"building the graph at {_dims_text(dims)}", device):
        run = _built(spec, dims, device, dtype, seed)
    if not run.outputs:
        raise BenchmarkSkipped(f"spec {spec.name!r}: the output does not depend on "
                               f"{', '.join(spec.differentiable)}: no backward to time")
    with memory_guard(f"warming up at {_dims_text(dims)}", device):
        for _ in range(warmup):
            run.forward()
            run.backward()
    return run


def _built(
    spec: Spec, dims: dict[str, int], device: str, dtype: torch.dtype, seed: int
) -> BackwardRun:
    counts = {name: spec_input.count[1] for name, spec_input in spec.inputs.items()
              if spec_input.count is not None}
    params = {name: choices[0] for name, choices in spec.params.items()}
    generated = {}
    for name, spec_input in spec.inputs.items():
        for leaf in leaf_names(name, spec_input, counts.get(name)):
            generated[leaf] = generated_values(spec_input, spec_input.resolve(dims), dtype,
                                               seed + len(generated), dims)
    example = Example(dims, generated, cotangent_seed=seed, params=params, counts=counts)
    values = prepared(spec, example, dtype, device)
    outputs = tuple(t for t in checked_forward(spec, values, example).tensors
                    if t.requires_grad)
    grad_outputs = tuple(cotangent(t.shape, seed + len(values) + k, t.dtype, device)
                         for k, t in enumerate(outputs))
    leaves = [values[leaf] for leaf in leaves_of(spec, example, spec.differentiable)]
    return BackwardRun(spec, example, device, dtype, values, outputs, grad_outputs, leaves)


def _dims_text(dims: Mapping[str, int]) -> str:
    return ", ".join(f"{name}={size}" for name, size in dims.items()) or "its shapes"


def measure(
    spec: Spec,
    dims: Mapping[str, int] | None = None,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    seed: int = DEFAULT_SEED,
    min_time: float = 0.1,
) -> Measurement:
    """Median forward and backward times of ``spec`` at ``dims`` (default: ``benchmark_dims``).

    >>> from harness.spec import Input
    >>> spec = Spec(forward=lambda x: x.exp().sum(), inputs={"x": Input(("n",))}, name="e")
    >>> m = measure(spec, {"n": 100}, min_time=0.01)
    >>> m.input_elements, m.ratio > 0
    (100, True)
    """
    run = prepare(spec, dims, device=device, dtype=dtype, seed=seed)
    with memory_guard(f"timing at {_dims_text(run.dims)}", device):
        forward, backward = time_calls([run.forward, run.backward], min_time=min_time)
    return run.measurement(statistics.median(forward), statistics.median(backward),
                           min(forward), min(backward))


def over_bound(measurements: Sequence[Measurement], bound: float) -> list[Measurement]:
    """The measurements whose backward/forward ratio exceeds ``bound``, worst first:
    the ratio of medians, and of minima where known (so that a burst of load on a
    shared machine, which inflates medians, does not make a spec look over).

    >>> fast = Measurement("a", "cpu", "float32", {}, 1, forward_s=1.0, backward_s=2.0)
    >>> slow = Measurement("b", "cpu", "float32", {}, 1, forward_s=1.0, backward_s=9.0)
    >>> [m.spec for m in over_bound([fast, slow], 5.0)]
    ['b']
    """
    over = [m for m in measurements if m.ratio > bound and _over(m.ratio_min, bound)]
    return sorted(over, key=lambda m: -m.ratio)


def _over(ratio: float | None, bound: float) -> bool:
    return ratio is None or ratio > bound


def call_overhead(
    device: str = "cpu", dtype: torch.dtype = torch.float32, *, min_time: float = 0.1
) -> Measurement:
    """Forward and backward times of one operation on one element: the fixed cost of a call.

    >>> call_overhead(min_time=0.01).input_elements
    1
    """
    trivial = Spec(forward=lambda x: x * 2, inputs={"x": Input((1,))}, name="call_overhead",
                   path=__name__)
    return measure(trivial, {}, device=device, dtype=dtype, min_time=min_time)


def overhead_bound(m: Measurement, overhead: Measurement, factor: float = OVERHEAD_FACTOR) -> bool:
    """Whether ``m``'s backward costs under ``factor`` times an empty backward (minima where
    known), so that its ratio says more about per-call overhead than about the arithmetic.

    >>> empty = Measurement("o", "cpu", "float32", {}, 1, forward_s=5e-6, backward_s=3e-5)
    >>> small = Measurement("a", "cpu", "float32", {"n": 24}, 24, 9e-6, 6e-5)
    >>> large = Measurement("b", "cpu", "float32", {"n": 10**6}, 10**6, 1e-3, 6e-3)
    >>> overhead_bound(small, empty), overhead_bound(large, empty)
    (True, False)
    """
    backward = m.backward_s if m.backward_min_s is None else m.backward_min_s
    empty = overhead.backward_s if overhead.backward_min_s is None else overhead.backward_min_s
    return backward < factor * empty
