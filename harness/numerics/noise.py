"""The noise model: how far rounding may move a quantity a spec computes, per element.

A *quantity* is a function ``quantity(point, dtype) -> {key: tensor}`` — a
gradient, an output, a tangent — evaluated at a point (the inputs, in ``dtype``).
Its noise at the item's point is NOISE_FACTOR times the spread of its changes,
per element, over reruns that each round differently:

- the float64 computation with every operation's result rounded at random to the
  item's precision (Monte Carlo arithmetic, ``harness.numerics.rounding``): it sees the
  intermediates that cancel (``1 - s`` for a saturated sigmoid, the mean std's
  backward subtracts) and never runs a low-precision kernel, so it cannot excuse
  one that is wrong;
- below float64, the computation in float64 and in the item's dtype at inputs
  moved by one or two units in the last place of the dtype (by backward
  stability rounding acts like moving the inputs; and the kernel's own rounding,
  as it changes from one input to the next). Moving every element by exactly one
  would keep the parity of their sum, and a mean's rounding error, unchanged.

In float64 itself the Monte Carlo runs simulate coarser unit roundoffs,
``SIMULATED_FLOAT64``, far above float64's own rounding, and the spread is
scaled back down: to first order rounding errors propagate linearly in the unit
roundoff. Not across a threshold: where a simulated rounding moves a value past a
floor (a pixel index from a coordinate) or a cut-off (pinv's rcond), the result jumps by
far more than rounding at float64's own precision could make it, and scaling the
jump back does not make it linear. So float64 is simulated at two roundoffs, and
each element keeps the smaller of the two scaled spreads: where rounding acts
linearly they agree, and a jump that one precision's runs hit and the other's do
not is left out (a threshold within float64's own rounding of the point lies
within the finite-difference steps too, where the oracle's kink test sees it).
A forward that refuses a dispatch mode (a compiled kernel) keeps the neighbour
samples, in float64 too.

Not the largest change over a handful of reruns, which all can come out small
together (a right gradient then fails), but the SPREAD_RANK-th largest over
ROUNDED_RUNS of each kind: as large, typically, and far less often small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch

from harness.errors import Fault
from harness.numerics.allowance import real_view
from harness.numerics.rounding import SimulatedRounding, unit_roundoff

Values = Mapping[str, torch.Tensor]
Quantity = Callable[[Values, torch.dtype], Mapping[str, torch.Tensor]]

ROUNDED_RUNS = 16  # Monte Carlo arithmetic runs, and neighbouring inputs sampled per dtype
# The spread is the SPREAD_RANK-th largest change over all the samples, per element. The
# largest of four samples of each kind (what this model took until a stress run failed
# a right gradient) is as large, typically, but all four can come out small together:
# a float32 softmax gradient that cancels to 0.0064 erred by 2.7e-7, and four runs moved
# it by at most 1.2e-8. The fourth largest of sixteen comes out below 0.3 of a normal
# spread's scale about 2e-6 of the time, the largest of four 3e-3 of the time.
SPREAD_RANK = 4
# The spread understates the worst change a rounding of the same kind may give: each
# sample is one draw of it.
NOISE_FACTOR = 10.0
KEPT_RUNS = 4  # Monte Carlo runs kept once drawn (the first settles most comparisons)
# The unit roundoffs simulated for float64: 2^9 and 2^4 times float64's own, so
# that the runs' real float64 rounding is 0.2% and 6% of what they simulate (on the
# safe side: it adds to the spread), far enough apart that a threshold one of
# them crosses the other mostly does not.
SIMULATED_FLOAT64 = (2.0**-44, 2.0**-49)


class NoiseModel:
    """Measures the rounding noise of quantities at one point, in one dtype.

    ``values`` are the item's inputs (in ``dtype``, on the device); each quantity
    is measured with the same random draws (``seed``), so a rerun gives the same
    allowance.

    >>> import torch
    >>> model = NoiseModel({"x": torch.tensor([0.5, 2.0])}, torch.float32, seed=0)
    >>> noise = model.measure(lambda point, dtype: {"y": point["x"].exp()})
    >>> bool((noise["y"] > 0).all()), bool((noise["y"] < 1e-4 * 2.0**0.5 * 10).all())
    (True, True)
    """

    def __init__(self, values: Values, dtype: torch.dtype, seed: int):
        self.values = {name: value.detach() for name, value in values.items()}
        self.dtype, self.seed = dtype, seed
        self.low = _REAL.get(dtype, dtype) != torch.float64  # below float64 precision
        self.point64 = {name: _in(value, torch.float64) for name, value in self.values.items()}
        # Each quantity's evaluations are drawn once and kept: a whole measure after its
        # first run, and the two float64 precisions, share the base and the runs drawn.
        self._bases: dict[tuple[Quantity, torch.dtype], dict] = {}
        self._draws: dict[tuple[Quantity, float], _Draws] = {}

    def measure(self, quantity: Quantity, *, neighbours: bool = True,
                runs: int | None = None) -> dict[str, torch.Tensor]:
        """NOISE_FACTOR x the spread of each of the quantity's tensors (float64, CPU): per
        element, the SPREAD_RANK-th largest change over ROUNDED_RUNS samples of each kind
        (over fewer ``runs`` of each kind, the largest change: with KEPT_RUNS, the
        cheaper measure ``compare.judged`` fails on only where a difference is far
        beyond it).

        Without ``neighbours`` only the simulated rounding counts (where it can run):
        how the function itself rounds, without what moving its inputs by an ulp does
        to it — the inputs of a comparison are exact, and an ulp of a bfloat16 input
        moves exp(x) by 6% at x = -8.

        With ``runs=1`` only the first simulated run counts (where it can run; else every
        sample, as without), and its change is the spread: cheap, and where a comparison
        passes on it, settled. It grants more than the whole measure where that one run
        moved an element more than all but a few of the whole measure's samples: a cost in
        sensitivity at the margin, for skipping the other runs in most comparisons that
        measure noise at all.

        Every kind of sample is drawn in order from a stream of its own, alike whatever
        was asked for first.
        """
        runs = ROUNDED_RUNS if runs is None else min(runs, ROUNDED_RUNS)
        if self.low:
            spread = self._spread(quantity, unit_roundoff(self.dtype), neighbours, runs)
        else:  # the smaller of two precisions' scaled spreads (see the module docstring)
            coarse, fine = (self._spread(quantity, roundoff, neighbours, runs)
                            for roundoff in SIMULATED_FLOAT64)
            spread = {key: torch.minimum(value, fine[key]) for key, value in coarse.items()}
        return {key: NOISE_FACTOR * value for key, value in spread.items()}

    def _spread(self, quantity: Quantity, roundoff: float, neighbours: bool,
                runs: int) -> dict[str, torch.Tensor]:
        """Per element, the SPREAD_RANK-th largest scaled change over the samples at
        ``roundoff`` (over fewer ``runs``, the largest)."""
        if runs == 1 and not self._draws_of(quantity, roundoff).first(1):
            runs = ROUNDED_RUNS  # no simulated run to stand for the rest: every sample
        top: dict[str, torch.Tensor] = {}  # per element, the largest, largest first
        seen = 0
        for base, samples, scale in self._runs(quantity, roundoff, neighbours, runs):
            for sample in samples:
                _keep_largest(top, _changes(base, sample, scale), SPREAD_RANK)
                seen += 1
        if runs < ROUNDED_RUNS:  # fewer samples: the largest, on the safe side
            rank = 1
        else:  # one rank per ROUNDED_RUNS / SPREAD_RANK samples that came (fewer where the
            # spec's code raised an ulp away), never a rank no sample reached
            rank = max(1, min(SPREAD_RANK, seen * SPREAD_RANK // ROUNDED_RUNS))
        return {key: value[rank - 1] for key, value in top.items()}

    def _runs(
        self, quantity: Quantity, roundoff: float, neighbours: bool, runs: int,
    ) -> Iterator[tuple[dict, Iterator, float]]:
        """(base, samples, scale): each sample's change from its base, times scale, counts;
        the first ``runs`` of each kind, the simulated ones at ``roundoff``."""
        base64 = self._base(quantity, torch.float64)
        draws = self._draws_of(quantity, roundoff)
        simulated = draws.first(runs)
        if simulated:
            yield base64, draws.runs(runs), unit_roundoff(self.dtype) / roundoff
        if (runs == 1 or not self.low) and simulated:
            return
        if neighbours or not simulated:  # no dispatch mode for this forward: neighbours
            yield base64, self._neighbours(quantity, torch.float64, runs, stream=1), 1.0
            if self.low:
                base = self._base(quantity, self.dtype)
                yield base, self._neighbours(quantity, self.dtype, runs, stream=2), 1.0

    def _draws_of(self, quantity: Quantity, roundoff: float) -> _Draws:
        if (quantity, roundoff) not in self._draws:
            self._draws[quantity, roundoff] = _Draws(quantity, roundoff, self.point64,
                                                   _stream_seed(self.seed, 0))
        return self._draws[quantity, roundoff]

    def _base(self, quantity: Quantity, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The quantity at the point itself, in float64 or in the item's dtype."""
        key = (quantity, dtype)
        if key not in self._bases:
            self._bases[key] = _evaluated(quantity, self.point64 if dtype == torch.float64
                                          else self.values, dtype)
        return self._bases[key]

    def _neighbours(self, quantity: Quantity, dtype: torch.dtype, runs: int,
                    stream: int) -> Iterator[dict]:
        """The quantity in ``dtype`` at ``runs`` neighbouring points, drawn in order from a
        stream of their own."""
        generator = torch.Generator().manual_seed(_stream_seed(self.seed, stream))
        for _ in range(runs):
            moved = {name: _in(_next_to(value, self.dtype, generator), dtype)
                     for name, value in self.values.items()}
            try:
                yield _evaluated(quantity, moved, dtype)
            except Fault:  # the spec's code fails an ulp away: that sample says nothing
                continue


class _Draws:
    """The Monte Carlo runs of one quantity at one roundoff, drawn in order from one seed:
    run k is the same whether asked for alone or among more, so two precisions round by
    the same random factors of their unit roundoffs. The first KEPT_RUNS are kept as they
    are first asked for (the first run settles most comparisons, and the whole measure
    then draws it again for nothing); the rest are drawn each time (in a large tensor
    sixteen kept samples weigh)."""

    def __init__(self, quantity: Quantity, roundoff: float, point64: Values, seed: int):
        self.quantity, self.roundoff, self.point64 = quantity, roundoff, point64
        self.generator = torch.Generator().manual_seed(seed)
        self.samples: list[dict] = []
        self.refused = False  # the forward refuses a dispatch mode (a compiled kernel)

    def first(self, count: int) -> list[dict]:
        """The first ``count`` runs (at most KEPT_RUNS), kept; none where the forward
        refuses the dispatch mode."""
        while len(self.samples) < min(count, KEPT_RUNS) and not self.refused:
            try:
                self.samples.append(self._run(self.generator))
            except Fault:  # the neighbour samples alone stand for rounding
                self.refused = True
        return self.samples[:count]

    def runs(self, count: int) -> Iterator[dict]:
        """The first ``count`` runs: the kept ones, then (past KEPT_RUNS) fresh ones."""
        kept = self.first(count)
        yield from kept
        if count <= len(kept) or self.refused:
            return
        generator = torch.Generator().set_state(self.generator.get_state())
        for _ in range(count - len(kept)):
            try:
                yield self._run(generator)
            except Fault:  # as in ``first``: the runs drawn so far stand for rounding
                return

    def _run(self, generator: torch.Generator) -> dict:
        with SimulatedRounding(self.roundoff, generator):
            return _evaluated(self.quantity, self.point64, torch.float64)


def _stream_seed(seed: int, stream: int) -> int:
    """The seed of a measure's ``stream``-th kind of sample (0: the Monte Carlo runs)."""
    return (seed + stream * 2**40) % 2**63


def _in(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float value in ``dtype`` (a complex one in its complex twin); an integer or bool
    one (an index, a mask) as it is."""
    if value.is_complex():
        return value.to(_COMPLEX.get(dtype, dtype))
    return value.to(dtype) if value.is_floating_point() else value


_COMPLEX = {torch.float64: torch.complex128, torch.float32: torch.complex64}
_REAL = {torch.complex128: torch.float64, torch.complex64: torch.float32}


def _evaluated(quantity: Quantity, point: Values, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {key: value.detach().to(torch.complex128 if value.is_complex() else
                                   torch.float64).cpu()
            for key, value in quantity(point, dtype).items()}


def _changes(base: Mapping, sample: Mapping, scale: float) -> dict[str, torch.Tensor]:
    """scale |sample - base| for each tensor, 0 where either is not finite: a run that broke
    the algorithm (a square root of a variance rounded below zero) says nothing of rounding."""
    changes = {}
    for key, value in base.items():
        change = real_view(sample[key] - value).abs() * scale
        changes[key] = torch.where(torch.isfinite(change), change, 0.0)
    return changes


def _keep_largest(kept: dict[str, torch.Tensor], changes: Mapping, rank: int) -> None:
    """Keep, per element, the ``rank`` largest changes seen (largest first; 0 for those not
    yet seen), without holding every sample."""
    for key, change in changes.items():
        if key not in kept:
            kept[key] = torch.zeros((rank, *change.shape), dtype=change.dtype)
        together = torch.cat([kept[key], change.unsqueeze(0)])
        kept[key] = together.topk(rank, dim=0).values


def _next_to(value: torch.Tensor, dtype: torch.dtype, generator) -> torch.Tensor:
    """Every element moved by one or two floats of ``dtype``, up or down, drawn per element
    (each part of a complex one)."""
    if value.is_complex():
        parts = _next_to(torch.view_as_real(value), _REAL.get(dtype, dtype), generator)
        return torch.view_as_complex(parts.contiguous())
    if not value.is_floating_point():
        return value
    up = torch.rand(value.shape, generator=generator) < 0.5
    twice = torch.rand(value.shape, generator=generator) < 0.5
    rounded = value.to(dtype)
    target = torch.where(up, torch.inf, -torch.inf).to(dtype=dtype, device=value.device)
    once = torch.nextafter(rounded, target)
    return torch.where(twice.to(value.device), torch.nextafter(once, target), once)
