"""PyTorch's OpInfo samples as harness Specs: the proof corpus of issues 12 and 15.

Every op in ``torch.testing._internal.common_methods_invocations.op_db`` that
supports autograd contributes its first float64 samples
(``op.sample_inputs("cpu", torch.float64, requires_grad=True)``), each as a
*plain* Spec whose only explicit example is the sample's own point:

- every tensor of the sample is an Input: a floating or complex one of the
  sample's shape (differentiable where the sample's tensor requires grad, with
  ``low``/``high`` holding its values); an integer or bool one with
  ``dtype="int64"`` (...) and ``[low, high)`` holding its values; a list of
  tensors of one shape and kind is one list Input (``count=(n, n)``);
- every non-tensor argument is a param with that one value (shown in a failure);
- the forward returns what the op returns: a tuple or list stays one (its
  integer outputs are not differentiated, nor the floating ones autograd does not
  differentiate, native_layer_norm's mean and rstd: ``nondifferentiable_outputs``);
  a sample with a complex tensor runs in complex128 (and complex64), one whose
  output alone is complex in float64.

The op runs as OpInfo's own gradient tests run it:
``op.gradcheck_wrapper(op.op, *args, **kwargs)`` then the sample's
``output_process_fn_grad``. Where a sample cannot be said so, the converter adapts
it and says how (``Sample.adapted``, the categories in ADAPTATIONS): a list of
tensors of different shapes or kinds is named tensor by tensor; a buffer the op
updates in place (batch norm's running statistics) is copied per call; a forward
that draws random numbers is seeded per call.

>>> corpus = load(ops=["sin"], per_op=1)  # doctest: +SKIP
>>> corpus.samples[0].id, corpus.samples[0].spec.differentiable  # doctest: +SKIP
('sin[0]', ('input',))
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from harness import Input, Spec, verify
from harness.errors import SpecError

PER_OP = 2  # the first samples of each op
DTYPES = {"float64": torch.float64, "float32": torch.float32}
COMPLEX_TWIN = {"float64": "complex128", "float32": "complex64"}
INPUT_DTYPES = {getattr(torch, name): name
                for name in ("int64", "int32", "int16", "int8", "uint8", "bool")}

# What a plain spec cannot say (a sample may need several); a sample with none is plain.
LIST_NAMED = "tensor list of mixed shapes or kinds named tensor by tensor"
NONDIFFERENTIABLE_OUTPUTS = "floating outputs autograd does not differentiate declared"
BUFFER_COPIED = "buffer updated in place copied per call"
RNG_SEEDED = "random forward seeded per call"
ADAPTATIONS = (LIST_NAMED, BUFFER_COPIED, RNG_SEEDED)
# What a sample uses of the native support (counted, no adaptation).
TUPLE_OUTPUT = "tuple or list output"
INTEGER_INPUT = "integer or bool input"
LIST_INPUT = "list input"
COMPLEX_ITEM = "complex input (complex128/complex64 items)"
COMPLEX_OUTPUT = "complex output of real inputs"
PARAMS = "non-tensor arguments as params"
NON_GRAD_FLOAT = "floating input without grad"
EMPTY_INPUT = "empty differentiable input"
EMPTY_OUTPUT = "empty output"
OPINFO_EXPECTS = "OpInfo expects its own gradient test to fail (or skips it)"


@dataclass
class Sample:
    """One OpInfo sample as a Spec, with what measuring it needs besides.

    ``example`` is the spec's explicit example (input name -> tensor, or list of
    tensors; param name -> value); ``call(example)`` runs the op as the spec's
    forward does; ``notes`` are the categories it falls into, ``adapted`` those of
    them that are adaptations (empty: a plain spec).
    """

    op: str
    index: int
    spec: Spec
    example: dict[str, Any]
    call: Callable[[dict[str, Any]], Any]
    notes: tuple[str, ...] = ()
    opinfo_expects: dict[str, str] = field(default_factory=dict)  # "check/dtype" -> why
    drawn_in: str = "float64"  # the dtype OpInfo drew the sample in

    @property
    def id(self) -> str:
        tag = "" if self.drawn_in == "float64" else f"{self.drawn_in} "
        return f"{self.op}[{tag}{self.index}]"

    @property
    def adapted(self) -> tuple[str, ...]:
        return tuple(note for note in self.notes if note in ADAPTATIONS)

    @property
    def is_complex(self) -> bool:
        return COMPLEX_ITEM in self.notes

    def dtype(self, real: str) -> str:
        """The item dtype the sample runs in for the real dtype ``real``."""
        return COMPLEX_TWIN[real] if self.is_complex else real

    def leaves(self, example: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """The differentiable tensors, by leaf name (``xs[1]`` for a list's)."""
        example = self.example if example is None else example
        found = {}
        for name in self.spec.differentiable:
            value = example[name]
            if isinstance(value, list):
                found.update({f"{name}[{i}]": v for i, v in enumerate(value)})
            else:
                found[name] = value
        return found

    @property
    def differentiable_numel(self) -> int:
        """The total number of elements of the differentiable inputs."""
        return sum(value.numel() for value in self.leaves().values())

    def with_leaves(self, leaves: Sequence[torch.Tensor]) -> dict[str, Any]:
        """The example with its differentiable tensors replaced, in ``leaves()`` order."""
        example = dict(self.example)
        it = iter(leaves)
        for name in self.spec.differentiable:
            value = example[name]
            example[name] = [next(it) for _ in value] if isinstance(value, list) else next(it)
        return example


@dataclass
class Corpus:
    """The converted samples, the count of each category, and every skip with its reason."""

    samples: list[Sample] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    ops: int = 0

    @property
    def plain(self) -> int:
        return sum(not sample.adapted for sample in self.samples)

    def summary(self) -> list[str]:
        total = len(self.samples)
        share = f" ({100 * self.plain / total:.1f}%)" if total else ""
        lines = [f"{self.ops} ops with autograd, {total} samples converted, "
                 f"{self.plain} of them plain specs{share}"]
        lines += [f"   {n:5d}  {what}{'  [adaptation]' if what in ADAPTATIONS else ''}"
                  for what, n in sorted(self.counts.items())]
        skipped = sum(len(ids) for ids in self.skipped.values())
        lines.append(f"{skipped} skipped:")
        for reason, ids in sorted(self.skipped.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(ids[:4]) + (", ..." if len(ids) > 4 else "")
            lines.append(f"   {len(ids):5d}  {reason}  ({shown})")
        return lines


class _Skip(Exception):
    """A sample that cannot become a Spec; the message is the reason."""


@dataclass(frozen=True)
class _Slot:
    """Where an input sits in the sample's arguments: filled by name at each call."""

    name: str


_OP_DB: list[Any] = []


def op_db() -> list[Any]:
    """OpInfo's op database (a plain import: it leaves torch's global flags frozen, as
    torch's own test suite runs; ``verify`` works so)."""
    if not _OP_DB:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.testing._internal.common_methods_invocations import op_db as ops
        _OP_DB.extend(ops)
    return _OP_DB


def op_name(op: Any) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def load(ops: Sequence[str] | None = None, per_op: int = PER_OP,
         complex_per_op: int = 0) -> Corpus:
    """Every autograd OpInfo's first ``per_op`` float64 samples (or those of ``ops``:
    names as ``op_name`` writes them, "addmm.decomposed", or a bare name for every variant);
    with ``complex_per_op``, also the first complex128 samples of every op with complex
    autograd."""
    corpus = Corpus()
    wanted = set(ops) if ops else None
    for op in op_db():
        name = op_name(op)
        if not op.supports_autograd:
            continue
        if wanted is not None and name not in wanted and op.name not in wanted:
            continue
        corpus.ops += 1
        if torch.float64 not in op.supported_dtypes("cpu"):
            corpus.skipped["no float64 on CPU"].append(name)
        else:
            _add(corpus, op, name, torch.float64, per_op)
        if complex_per_op and torch.complex128 in op.supported_backward_dtypes("cpu"):
            _add(corpus, op, name, torch.complex128, complex_per_op)
    return corpus


def _add(corpus: Corpus, op: Any, name: str, dtype: torch.dtype, count: int) -> None:
    drawn_in = str(dtype).removeprefix("torch.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = list(_first(op.sample_inputs("cpu", dtype, requires_grad=True), count))
    except Exception as error:
        corpus.skipped[f"sample_inputs raised {type(error).__name__}"].append(name)
        return
    for index, sample in enumerate(samples):
        try:
            converted = convert(op, name, index, sample, drawn_in)
        except _Skip as skip:
            tag = "" if drawn_in == "float64" else f"{drawn_in} "
            corpus.skipped[str(skip)].append(f"{name}[{tag}{index}]")
            continue
        corpus.samples.append(converted)
        corpus.counts.update(converted.notes)


def _first(iterable, n: int):
    for index, item in enumerate(iterable):
        if index >= n:
            return
        yield item


class _Converter:
    """Turns one SampleInput's arguments into inputs, params and a template to fill."""

    def __init__(self) -> None:
        self.inputs: dict[str, Input] = {}
        self.example: dict[str, Any] = {}
        self.notes: set[str] = set()

    def template(self, obj: Any, path: str, top: bool = True) -> Any:
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, path)
        if isinstance(obj, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in obj):
            return self._list(obj, path)
        if isinstance(obj, dict) and any(isinstance(x, torch.Tensor) for x in obj.values()):
            raise _Skip("tensors inside a dict argument")
        if not top:
            return obj
        self.notes.add(PARAMS)
        self.example[path] = obj
        return _Slot(path)

    def _tensor(self, tensor: torch.Tensor, path: str) -> _Slot:
        self.inputs[path] = _input(tensor)
        self.example[path] = tensor.detach().resolve_conj().clone()
        self._note(tensor)
        return _Slot(path)

    def _note(self, tensor: torch.Tensor) -> None:
        if tensor.is_complex():
            self.notes.add(COMPLEX_ITEM)
        elif not tensor.is_floating_point():
            self.notes.add(INTEGER_INPUT)
        elif not tensor.requires_grad:
            self.notes.add(NON_GRAD_FLOAT)

    def _list(self, items: Sequence[Any], path: str) -> Any:
        tensors = [x for x in items if isinstance(x, torch.Tensor)]
        kinds = {(tuple(t.shape), t.dtype, t.requires_grad) for t in tensors}
        if len(tensors) == len(items) and len(kinds) == 1 and tensors[0].layout == torch.strided:
            spec_input = _input(tensors[0], values=torch.cat([t.reshape(-1) for t in tensors]))
            self.inputs[path] = Input(spec_input.shape, low=spec_input.low,
                                      high=spec_input.high, dtype=spec_input.dtype,
                                      requires_grad=spec_input.requires_grad,
                                      count=(len(tensors), len(tensors)))
            self.example[path] = [t.detach().resolve_conj().clone() for t in tensors]
            for t in tensors:
                self._note(t)
            self.notes.add(LIST_INPUT)
            return _Slot(path) if isinstance(items, list) else _TupleSlot(path)
        self.notes.add(LIST_NAMED)
        return type(items)(self.template(x, f"{path}_{i}", top=False)
                           for i, x in enumerate(items))


@dataclass(frozen=True)
class _TupleSlot(_Slot):
    """A list input passed to the op as a tuple (as the sample gave it)."""


def _input(tensor: torch.Tensor, values: torch.Tensor | None = None) -> Input:
    """An Input of the tensor's shape and dtype whose domain holds its values."""
    if tensor.layout != torch.strided:
        raise _Skip(f"{tensor.layout} tensor")
    values = tensor if values is None else values
    shape = tuple(tensor.shape)
    if tensor.is_floating_point() or tensor.is_complex():
        if tensor.dtype not in (torch.float64, torch.complex128):
            raise _Skip(f"{tensor.dtype} tensor in a float64 sample")
        if not bool(torch.isfinite(values).all()):
            raise _Skip("non-finite sample values (inf or nan)")
        values = values.resolve_conj()
        real = torch.view_as_real(values).reshape(-1) if values.is_complex() else values
        return _domain(real, shape, tensor.requires_grad)
    if tensor.dtype not in INPUT_DTYPES:
        raise _Skip(f"{tensor.dtype} tensor")
    if tensor.dtype == torch.bool:
        return Input(shape, dtype="bool", low=0, high=2)
    flat = values.reshape(-1).long()
    low = int(flat.min()) if flat.numel() else 0
    high = int(flat.max()) + 1 if flat.numel() else 1
    return Input(shape, dtype=INPUT_DTYPES[tensor.dtype], low=low, high=high)


def _domain(values: torch.Tensor, shape: tuple[int, ...], requires_grad: bool) -> Input:
    """A float Input whose [low, high] holds the values, with margins that keep the sign
    of a one-signed sample (log, sqrt: a drawn point stays positive)."""
    flat = values.detach().reshape(-1)
    if flat.numel() == 0:
        return Input(shape, low=-1.0, high=1.0, requires_grad=requires_grad)
    lo, hi = float(flat.min()), float(flat.max())
    pad = 0.01 * max(hi - lo, abs(lo), abs(hi), 1.0)
    low = lo / 2 if lo > 0 else lo - pad
    high = hi / 2 if hi < 0 else hi + pad
    return Input(shape, low=low, high=high, requires_grad=requires_grad)


def convert(op: Any, name: str, index: int, sample: Any, drawn_in: str = "float64") -> Sample:
    """One SampleInput as a Sample; raises _Skip with the reason where it cannot be one."""
    converter = _Converter()
    positional = [converter.template(sample.input, "input")]
    positional += [converter.template(arg, f"arg{i}") for i, arg in enumerate(sample.args)]
    keywords = {key: converter.template(value, f"kw_{key}")
                for key, value in sample.kwargs.items()}
    inputs, example, notes = converter.inputs, converter.example, converter.notes
    if COMPLEX_ITEM in notes and any(
            isinstance(v, torch.Tensor) and v.is_floating_point() for v in example.values()):
        raise _Skip("real and complex floating inputs together (a complex item makes every "
                    "floating input complex)")
    if not any(i.requires_grad for i in inputs.values()):
        raise _Skip("no argument requires grad")
    process, wrapper, function_variant = (sample.output_process_fn_grad, op.gradcheck_wrapper,
                                          op.op)
    copied: set[str] = set()
    seeded: list[bool] = [False]

    def fill(obj: Any, values: dict[str, Any]) -> Any:
        if isinstance(obj, _Slot):
            value = values[obj.name]
            if obj.name in copied:
                value = value.clone()
            return tuple(value) if isinstance(obj, _TupleSlot) else value
        if isinstance(obj, (list, tuple)):
            return type(obj)(fill(x, values) for x in obj)
        return obj

    def raw(values: dict[str, Any]) -> Any:
        args = [fill(arg, values) for arg in positional]
        kwargs = {key: fill(value, values) for key, value in keywords.items()}
        if not seeded[0]:
            return process(wrapper(function_variant, *args, **kwargs))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return process(wrapper(function_variant, *args, **kwargs))

    def call(values: dict[str, Any]) -> Any:
        return raw(values)

    for slot in _buffers_updated(raw, example, inputs):
        copied.add(slot)
        notes.add(BUFFER_COPIED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = raw(_grad_leaves(example, inputs))  # which outputs autograd records
            first, second = raw(_fresh(example)), raw(_fresh(example))
            if not _same(first, second):
                seeded[0] = True
                notes.add(RNG_SEEDED)
                first, second = raw(_fresh(example)), raw(_fresh(example))
    except Exception as error:
        raise _Skip(f"forward raised {type(error).__name__} at conversion") from None
    skipped: list[int] = []
    tensors = _tensors(probe)
    floating = [t for t in tensors if t.is_floating_point() or t.is_complex()]
    if not floating:
        raise _Skip("no floating output")
    if not any(t.requires_grad for t in floating):
        raise _Skip("no output requires grad")
    if isinstance(probe, (tuple, list)):
        notes.add(TUPLE_OUTPUT)
        skipped = [k for k, o in enumerate(probe)
                   if isinstance(o, torch.Tensor) and (o.is_floating_point() or o.is_complex())
                   and not o.requires_grad]
        if skipped:
            notes.add(NONDIFFERENTIABLE_OUTPUTS)
    if any(t.is_complex() for t in floating) and COMPLEX_ITEM not in notes:
        notes.add(COMPLEX_OUTPUT)
    if not all(bool(torch.isfinite(t).all()) for t in _tensors(first)
               if t.is_floating_point() or t.is_complex()):
        raise _Skip("non-finite output at the sample (the harness rejects it by design)")
    if not _same(first, second):
        raise _Skip("forward not deterministic even seeded")
    if all(t.numel() == 0 for t in floating):
        notes.add(EMPTY_OUTPUT)
    if any(value.numel() == 0 for name, value in example.items()
           if name in inputs and inputs[name].requires_grad
           and isinstance(value, torch.Tensor)):
        notes.add(EMPTY_INPUT)
    params = {key: [value] for key, value in example.items() if key not in inputs}
    dtypes = ["complex128", "complex64"] if COMPLEX_ITEM in notes else ["float64", "float32"]
    expects = opinfo_expectations(op, getattr(torch, drawn_in))
    if expects:
        notes.add(OPINFO_EXPECTS)
    try:
        tag = "" if drawn_in == "float64" else "c"
        spec = Spec(forward=lambda **values: call(values), inputs=inputs, params=params or None,
                    nondifferentiable_outputs=skipped,
                    examples=[example], dtypes=dtypes, name=f"{name}-{tag}{index}",
                    doc=f"OpInfo {name} sample {index}: {sample.name or sample!r}"[:200],
                    path=f"opinfo:{name}", line=index)
    except SpecError as error:
        raise _Skip(f"not a valid Spec: {str(error).splitlines()[0][-100:]}") from None
    return Sample(name, index, spec, example, call, tuple(sorted(notes)), expects, drawn_in)


def _fresh(example: dict[str, Any]) -> dict[str, Any]:
    return {k: _clone(v) for k, v in example.items()}


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list) and all(isinstance(v, torch.Tensor) for v in value):
        return [v.detach().clone() for v in value]
    return value


def _grad_leaves(example: dict[str, Any], inputs: dict[str, Input]) -> dict[str, Any]:
    """The example with its differentiable tensors requiring grad (as in the sample)."""
    values = _fresh(example)
    for name, spec_input in inputs.items():
        if spec_input.requires_grad:
            value = values[name]
            values[name] = ([v.requires_grad_() for v in value] if isinstance(value, list)
                            else value.requires_grad_())
    return values


def _buffers_updated(raw: Callable, example: dict[str, Any],
                     inputs: dict[str, Input]) -> list[str]:
    """The non-differentiable tensor inputs the op modifies in place."""
    values = _fresh(example)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw(values)
    except Exception:
        return []
    return [name for name, spec_input in inputs.items()
            if not spec_input.requires_grad and isinstance(values[name], torch.Tensor)
            and not torch.equal(values[name], example[name])]


# The OpInfo test that stands for each harness check: where OpInfo itself marks it an
# expected failure or skips it (on CPU, in float64), torch's gradient is known to be
# wrong or undefined there, and the harness's failure is no false positive.
OPINFO_TESTS = {
    "finite_difference": ("TestBwdGradients", "test_fn_grad"),
    "taylor": ("TestBwdGradients", "test_fn_grad"),
    "gradcheck": ("TestBwdGradients", "test_fn_grad"),
    "forward_mode": ("TestFwdGradients", "test_forward_mode_AD"),
}


def opinfo_expectations(op: Any, drawn_in: torch.dtype = torch.float64) -> dict[str, str]:
    """{"check/dtype": OpInfo's decorator} for the checks whose OpInfo test OpInfo marks
    expectedFailure or skips for this op on the CPU in the sample's dtype."""
    import inspect
    import unittest

    found = {}
    for check, (cls_name, test_name) in OPINFO_TESTS.items():
        why = []
        for info in getattr(op, "decorators", ()):
            try:
                active = info.is_active(cls_name, test_name, "cpu", drawn_in, {})
            except Exception:
                continue
            for decorator in getattr(info, "decorators", ()) if active else ():
                if decorator is unittest.expectedFailure:
                    why.append("expectedFailure")
                elif getattr(decorator, "__qualname__", "").startswith("skip."):
                    reason = inspect.getclosurevars(decorator).nonlocals.get("reason")
                    why.append(f"skip({reason!r})")
        if why:
            for dtype in DTYPES:
                found[f"{check}/{dtype}"] = (f"OpInfo marks {cls_name}.{test_name} "
                                             f"{', '.join(why)} for {op_name(op)}")
    return found


def _tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return []


def _same(a: Any, b: Any) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(
        x.shape == y.shape and x.dtype == y.dtype and bool(torch.equal(x.detach(), y.detach())
                                                           or torch.allclose(
            x.detach(), y.detach(), rtol=0, atol=0, equal_nan=True))
        for x, y in zip(ta, tb))


# Real torch gradient bugs the corpus shows: sample id -> {"check/dtype": evidence}.
# These items are expected failures (tests/test_opinfo.py), not skipped: were torch
# fixed, or the harness blind to them, the strict xfail would fail.
HARDSIGMOID = (
    "torch bug: the float64 backward multiplies by float32(1/6) = 0.1666666716337204 "
    "(aten/src/ATen/native/cpu/Activation.cpp, hardsigmoid_backward_kernel: "
    "`const scalar_t one_sixth(1.0f / 6.0f)`), a relative error of 2.98e-8 in every "
    "element; the forward divides by 6 exactly; gradcheck (rtol 1e-3) cannot see it, "
    "nor forward_mode (forward AD carries the same constant)"
)
TRIGAMMA = (
    "torch bug: digamma's float64 backward, polygamma(1, x), errs by up to 4.6e-10 relative "
    "(0.62631864967 at x = 2.0474, mpmath 0.62631864944; 3.1e-10 at x = 0.5, 4.6e-10 at "
    "1.5, 1.0e-10 at 4.18), an approximation short of float64 precision; gradcheck "
    "(rtol 1e-3) cannot see it, and it showed once each element's partial derivative "
    "was judged by the rounding of its own terms, not of the whole output's"
)
KNOWN_TORCH_BUGS: dict[str, dict[str, str]] = {
    "nn.functional.hardsigmoid[0]": {"finite_difference/float64": HARDSIGMOID},
    "digamma[0]": {"finite_difference/float64": TRIGAMMA},
    "polygamma.polygamma_n_0[0]": {"finite_difference/float64": TRIGAMMA},
    "special.polygamma.special_polygamma_n_0[0]": {"finite_difference/float64": TRIGAMMA},
}


# The checks issue 12 holds the corpus to, per (real) dtype; a complex sample runs them
# in complex128 and complex64.
CHECKS_PER_DTYPE = {
    "float64": ("finite_difference", "taylor", "gradcheck", "forward_mode"),
    "float32": ("finite_difference", "taylor"),
}


@dataclass
class Outcome:
    """What one ``verify`` of one sample, check and dtype did.

    ``status``: "pass"; "fail" (a failure at the sample's point: for a right gradient,
    a false positive); "skipped" (the check skipped itself, ``reason`` says why);
    "error" (``verify`` raised).
    """

    status: str
    seconds: float
    failures: list[Any] = field(default_factory=list)
    reason: str = ""
    discarded: int = 0
    examples: int = 0

    @property
    def headline(self) -> str:
        if self.failures:
            return self.failures[0].headline
        return self.reason


def run(sample: Sample, check: str, dtype: str, seed: int = 0,
        spec: Spec | None = None) -> Outcome:
    """``verify`` of the sample's spec (or ``spec``, a planted variant) at its own point
    only (max_examples=0), in ``dtype`` (its complex twin for a complex sample)."""
    spec = spec or sample.spec
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = verify(spec, checks=[check], dtype=getattr(torch, sample.dtype(dtype)),
                            seed=seed, max_examples=0)
    except Exception as error:
        where = traceback.extract_tb(error.__traceback__)[-1]
        return Outcome("error", time.perf_counter() - start,
                       reason=f"{type(error).__name__}: {_first_line(error)} "
                              f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
    seconds = time.perf_counter() - start
    counts = {"discarded": report.discarded, "examples": report.examples}
    if report.failures:
        return Outcome("fail", seconds, report.failures, **counts)
    if check in report.skipped:
        return Outcome("skipped", seconds, reason=report.skipped[check], **counts)
    return Outcome("pass", seconds, **counts)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""
