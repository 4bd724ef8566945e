"""Spec: a function, its inputs and what is known of its gradient, validated at construction."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.errors import SpecError, at_key, did_you_mean
from harness.spec.calls import KeywordCall
from harness.spec.deferral import caller_location, consume, defer
from harness.spec.examples import checked_examples
from harness.spec.input import RESERVED_NAMES, Input, is_real
from harness.spec.nn_module import module_spec_parts
from harness.spec.options import (
    check_integer_bounds,
    check_memory,
    checked_benchmark,
    checked_checks,
    checked_dims,
    checked_dtypes,
    checked_params,
    checked_tolerances,
)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class Spec:
    """A function, its inputs and what is known of its gradient.

    ``forward`` takes the inputs (and any dims and params it names) by keyword and
    returns a tensor, or a tuple or list of them (an integer or other non-float
    output, such as topk's indices, is not differentiated). ``backward`` maps an
    input's name to its analytic vector-Jacobian product, a callable taking any of
    ``grad`` (the cotangent; a tuple with one entry per output for a tuple forward),
    ``result`` (likewise), the inputs, the dims and the params by keyword.
    ``params`` maps a name to the values a non-tensor argument is drawn from
    (``{"dim": [0, -1]}``), shrinking to the first. ``nondifferentiable_outputs``
    names, by index, the floating outputs autograd does not differentiate (a
    Function's ``ctx.mark_non_differentiable``): they get no cotangent.

    >>> import torch
    >>> cube = Spec(
    ...     forward=lambda x: x**3,
    ...     inputs={"x": Input(("n",))},
    ...     backward={"x": lambda grad, x: grad * 3 * x**2},
    ...     name="cube",
    ... )
    >>> cube.differentiable
    ('x',)
    """

    def __init__(
        self,
        *,
        forward: Callable[..., Any],
        inputs: Mapping[str, Input],
        backward: Mapping[str, Callable[..., Any]] | None = None,
        jvp: Callable[..., Any] | None = None,
        reference: Callable[..., Any] | None = None,
        dims: Mapping[str, Sequence[int]] | None = None,
        params: Mapping[str, Sequence[Any]] | None = None,
        checks: Sequence[str] | None = None,
        dtypes: Sequence[str] | None = None,
        tolerances: Mapping[str, Mapping[str, float]] | None = None,
        twice_differentiable: bool = False,
        examples: Sequence[Mapping[str, Any]] = (),
        name: str | None = None,
        doc: str = "",
        benchmark: Mapping[str, int] | None = None,
        nondet_tol: float = 0.0,
        nondifferentiable_outputs: Sequence[int] = (),
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        if path is None:
            path, line = caller_location()
        self.path, self.line, self.name = path, line, name
        self.error: SpecError | None = None  # set on an invalid spec built by deferring_errors
        try:
            _check_name(name)
            self._build(
                forward=forward, inputs=inputs, backward=backward, jvp=jvp,
                reference=reference, dims=dims, params=params, checks=checks, dtypes=dtypes,
                tolerances=tolerances, twice_differentiable=twice_differentiable,
                examples=examples, doc=doc, benchmark=benchmark, nondet_tol=nondet_tol,
                nondifferentiable_outputs=nondifferentiable_outputs,
            )
        except SpecError as error:
            self.error = error.located(path=path, line=line, spec=name)
            if not defer(self):
                raise self.error from None

    @classmethod
    def _invalid(cls, error: SpecError, path: str | None, line: int | None,
                 name: str | None) -> Spec:
        """An invalid spec for ``error`` (deferred), or ``error`` raised."""
        located = error.located(path=path, line=line, spec=name)
        spec = cls.__new__(cls)
        spec.path, spec.line, spec.name, spec.error = path, line, name, located
        if not defer(spec):
            raise located from None
        return spec

    def _build(
        self, *, forward, inputs, backward, jvp, reference, dims, params, checks, dtypes,
        tolerances, twice_differentiable, examples, doc, benchmark, nondet_tol,
        nondifferentiable_outputs,
    ) -> None:
        """Check every argument in turn, each SpecError tagged with its spec-file key."""
        with at_key("inputs"):
            self.inputs = _checked_inputs(inputs)
        with at_key("dims"):
            self.dims = checked_dims(dims, self.inputs)
        check_integer_bounds(self.inputs, self.dims, dims or {})
        with at_key("params"):
            self.params = checked_params(params, [*self.inputs, *self.dims, *RESERVED_NAMES])
        variables = {**{n: "input" for n in self.inputs}, **{d: "dim" for d in self.dims},
                     **{p: "param" for p in self.params}}
        with at_key("forward"):
            self.forward = KeywordCall(forward, "forward", variables)
        self.backward = _checked_backward(backward, self.inputs, variables)
        tangents = {f"{n}_t": "tangent" for n in self.differentiable}
        with at_key("jvp"):
            self.jvp = _optional_call(jvp, "jvp", {**variables, **tangents, "result": "output"})
        with at_key("reference"):
            self.reference = _optional_call(reference, "reference", variables)
        with at_key("checks"):
            self.checks = checked_checks(checks)
        with at_key("dtypes"):
            self.dtypes = checked_dtypes(dtypes)
            _check_complex_inputs(self.inputs, self.dtypes)
        with at_key("tolerances"):
            self.tolerances = checked_tolerances(tolerances)
        if not isinstance(twice_differentiable, bool):
            raise SpecError(f"twice_differentiable={twice_differentiable!r} must be true or "
                            f"false", key="twice_differentiable")
        self.twice_differentiable = twice_differentiable
        if not isinstance(doc, str):
            raise SpecError(f"doc={doc!r} must be a string", key="doc")
        self.doc = doc
        with at_key("benchmark"):
            self.benchmark = checked_benchmark(benchmark, self.dims)
        if not is_real(nondet_tol) or not 0 <= nondet_tol < math.inf:
            raise SpecError(f"nondet_tol={nondet_tol!r} must be a non-negative number",
                            key="nondet_tol")
        self.nondet_tol = float(nondet_tol)
        with at_key("nondifferentiable_outputs"):
            self.nondifferentiable_outputs = _checked_output_indices(nondifferentiable_outputs)
        with at_key("inputs"):
            check_memory(self.inputs, self.dims)
        with at_key("examples"):
            self.examples = checked_examples(examples, self)
        # Known before running only for a TOML forward (load/arity); None: the forward tells.
        self.output_count: int | None = None

    @property
    def differentiable(self) -> tuple[str, ...]:
        """Names of the inputs whose gradient is checked."""
        return tuple(n for n, i in self.inputs.items() if i.requires_grad)

    @property
    def several_outputs(self) -> bool:
        """Whether the forward may return two or more tensors (unknown counts as may)."""
        return self.output_count is None or self.output_count > 1

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def __repr__(self) -> str:
        return f"<Spec {self.name!r} at {self.location}>"

    @classmethod
    def from_module(
        cls,
        module: Any,
        *,
        inputs: Mapping[str, Input],
        forward: Callable[..., Any] | None = None,
        parameter_low: float = -1.0,
        parameter_high: float = 1.0,
        **spec_options: Any,
    ) -> Spec:
        """A spec whose differentiable inputs are an ``nn.Module``'s parameters.

        ``forward(model, **inputs)`` receives ``model``, a callable that runs the
        module with the generated parameters (through ``torch.func.functional_call``);
        without it the spec's output is ``model(*inputs)``. Parameters keep their
        dotted names ("linear.weight") as input names.

        >>> import torch
        >>> spec = Spec.from_module(
        ...     torch.nn.Linear(2, 1),
        ...     inputs={"x": Input(("n", 2), requires_grad=False)},
        ...     forward=lambda model, x: model(x).square().mean(),
        ...     name="linear_square",
        ... )
        >>> spec.differentiable
        ('weight', 'bias')
        """
        if "path" not in spec_options:
            spec_options["path"], spec_options["line"] = caller_location()
        try:
            all_inputs, call = module_spec_parts(
                module, inputs, forward, parameter_low, parameter_high
            )
        except SpecError as error:
            return cls._invalid(error, spec_options["path"], spec_options.get("line"),
                                spec_options.get("name"))
        return cls(forward=call, inputs=all_inputs, **spec_options)


def _check_complex_inputs(inputs: Mapping[str, Input], dtypes: Sequence[str]) -> None:
    """Kinks are points of the real line: a complex item's inputs have none."""
    complex_dtypes = [d for d in dtypes if d.startswith("complex")]
    for name, value in inputs.items():
        if value.kinks and complex_dtypes:
            raise SpecError(
                f"inputs.{name} declares kinks={list(value.kinks)!r} and the spec runs in "
                f"{', '.join(complex_dtypes)} — kinks are points on the real line; drop "
                f"them or the complex dtypes")


def _check_name(name: object) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError(
            f"name={name!r} cannot be part of a pytest node id — use letters, digits, "
            f"'_', '-' and '.', e.g. 'softmax_rows'",
            key="name",
        )


def _checked_inputs(inputs: object) -> dict[str, Input]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise SpecError(
            f"inputs={inputs!r} must be a non-empty mapping of names to Input — "
            f"e.g. inputs={{'x': Input(['n'])}}"
        )
    for name, value in inputs.items():
        if not isinstance(name, str) or not all(
            (part.isidentifier() and not part.startswith("_")) or part.isdigit()
            for part in name.split(".")
        ):
            raise SpecError(
                f"input name {name!r} is not a valid name — use letters, digits and "
                f"underscores (dots separate a module's parameter path)"
            )
        if name in RESERVED_NAMES or name.endswith("_t"):
            raise SpecError(
                f"input name {name!r} is reserved (grad, result, torch and names ending "
                f"in '_t' mean something in formulas) — rename the input"
            )
        if not isinstance(value, Input):
            raise SpecError(
                f"inputs[{name!r}]={value!r} is not an Input — write Input(shape, ...)",
                key=f"inputs.{name}",
            )
        if value.error is not None:  # built invalid under deferring_errors: so is the spec
            consume(value)
            raise value.error
    if not any(value.requires_grad for value in inputs.values()):
        raise SpecError(
            "no input has requires_grad=true, so there is no gradient to check — "
            "let at least one input require a gradient"
        )
    return dict(inputs)


def _checked_backward(backward, inputs, variables) -> dict[str, KeywordCall]:
    if backward is None:
        return {}
    if not isinstance(backward, Mapping):
        raise SpecError(f"backward={backward!r} must map input names to callables")
    differentiable = [n for n, i in inputs.items() if i.requires_grad]
    checked = {}
    for name, fn in backward.items():
        scope = {**variables, "grad": "cotangent", "result": "output"}
        with at_key(f"backward.{name}"):
            _check_backward_name(name, inputs, differentiable)
            checked[name] = KeywordCall(fn, f"backward.{name}", scope)
    return checked


def _check_backward_name(name, inputs, differentiable) -> None:
    if name not in inputs:
        raise SpecError(
            f"backward names {name!r}, which is not an input"
            f"{did_you_mean(name, inputs)} — the inputs are {', '.join(inputs)}"
        )
    if name not in differentiable:
        raise SpecError(
            f"backward names {name!r}, an input with requires_grad=false — "
            f"remove the formula or let the input require a gradient"
        )


def _optional_call(fn, role: str, variables) -> KeywordCall | None:
    return None if fn is None else KeywordCall(fn, role, variables)


def _checked_output_indices(indices: Any) -> frozenset[int]:
    """The outputs a forward returns that autograd does not differentiate (a Function's
    ``ctx.mark_non_differentiable``, native_layer_norm's mean and rstd): no cotangent,
    no gradient through them, left out of what finite differences see."""
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in indices) \
            or len(set(indices)) != len(indices):
        raise SpecError(f"nondifferentiable_outputs={indices!r} must be a list of output "
                        f"indices, each once (0 is the first output) — e.g. "
                        f"nondifferentiable_outputs=[1] for a forward returning (out, lse) "
                        f"whose lse is marked non-differentiable")
    return frozenset(indices)
