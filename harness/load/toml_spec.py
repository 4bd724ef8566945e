"""One TOML table -> one Spec: keys checked, formulas compiled through the whitelist.

Nothing here evaluates anything: formulas become Formula objects that only run
when a check calls them, and only whitelisted functions are reachable from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError, at_key, did_you_mean
from harness.load.arity import constant_indices, output_count, tuple_length
from harness.load.formula import compile_formula, quoted
from harness.spec import Input, Spec

FORMULA_KEYS = ("forward", "backward", "jvp", "reference")  # compiled through the whitelist
# Passed to Spec as they are (Spec checks them).
OPTION_KEYS = ("dims", "params", "checks", "dtypes", "tolerances", "twice_differentiable",
               "benchmark", "nondet_tol", "nondifferentiable_outputs")
SPEC_KEYS = ("doc", *FORMULA_KEYS, "inputs", *OPTION_KEYS, "examples")
INPUT_KEYS = ("shape", "low", "high", "requires_grad", "kinks", "unique", "dtype", "count")


def spec_from_table(name: str, table: Any, path: str, line: int) -> Spec:
    if not isinstance(table, Mapping):
        raise SpecError(
            f"{name} = {table!r} is not a table — write [{name}] and the spec's keys under it",
        )
    for key in table:
        if key not in SPEC_KEYS:
            with at_key(key):
                raise SpecError(
                    f"unknown key {key!r}{did_you_mean(key, SPEC_KEYS)} — the keys of a "
                    f"spec are {', '.join(SPEC_KEYS)}"
                )
    if "forward" not in table:
        raise SpecError("has no forward — add forward = \"<formula of the inputs>\"")
    with at_key("inputs"):
        inputs = _inputs(table.get("inputs"))
    dim_names = sorted({d for spec_input in inputs.values() for d in spec_input.dim_names})
    params = table.get("params")
    variables = [*inputs, *dim_names, *(params if isinstance(params, Mapping) else ())]
    differentiable = [n for n, i in inputs.items() if i.requires_grad]
    options = {key: table[key] for key in OPTION_KEYS if key in table}
    with at_key("forward"):
        forward = _formula(table["forward"], variables, "forward")
    with at_key("reference"):
        reference = _optional_formula(table.get("reference"), variables, "reference")
    with at_key("jvp"):
        tangents = [f"{n}_t" for n in differentiable]
        jvp = _optional_formula(table.get("jvp"), [*variables, *tangents, "result"], "jvp")
    backward = _backward(table.get("backward"), [*variables, "grad", "result"])
    _check_output_indices(tuple_length(forward), {"jvp": jvp, **{
        f"backward.{name}": formula for name, formula in backward.items()}})
    count = output_count(forward)
    _check_skipped_outputs(table.get("nondifferentiable_outputs", ()), count)
    spec = Spec(
        forward=forward, inputs=inputs, backward=backward or None, jvp=jvp,
        reference=reference, examples=table.get("examples", ()), name=name,
        doc=table.get("doc", ""), path=path, line=line, **options,
    )
    spec.output_count = count
    return spec


def _check_skipped_outputs(indices: Any, count: int | None) -> None:
    """nondifferentiable_outputs against the forward's static arity, where it has one (Spec
    checks the value itself)."""
    if count is None or not isinstance(indices, list):
        return
    beyond = [k for k in indices if isinstance(k, int) and not isinstance(k, bool)
              and k >= count]
    if beyond:
        with at_key("nondifferentiable_outputs"):
            raise SpecError(
                f"nondifferentiable_outputs names output {beyond[0]}, but the forward returns "
                f"{count} output{'s' if count > 1 else ''}"
                f"{f' (0 to {count - 1})' if count > 1 else ''} — name an output by its index "
                f"in the forward's tuple")


def _inputs(inputs: Any) -> dict[str, Input]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise SpecError(
            "has no inputs — declare each one, e.g. inputs.x = { shape = [\"n\"] }"
        )
    built = {}
    for name, fields in inputs.items():
        with at_key(f"inputs.{name}"):
            if not isinstance(fields, Mapping):
                raise SpecError(
                    f"inputs.{name}={fields!r} is not a table — write "
                    f"inputs.{name} = {{ shape = [\"n\"] }}"
                )
            for key in fields:
                if key not in INPUT_KEYS:
                    raise SpecError(
                        f"inputs.{name} has unknown key {key!r}{did_you_mean(key, INPUT_KEYS)}"
                        f" — the keys of an input are {', '.join(INPUT_KEYS)}"
                    )
            options = {key: value for key, value in fields.items() if key != "shape"}
            built[name] = Input(fields.get("shape", ()), **options)
    return built


def _formula(source: Any, variables: list[str], what: str):
    if not isinstance(source, str):
        raise SpecError(
            f"{what}={source!r} is not a formula string — write {what} = \"<expression>\""
        )
    return compile_formula(source, variables=variables, what=what)


def _optional_formula(source: Any, variables: list[str], what: str):
    return None if source is None else _formula(source, variables, what)


def _backward(backward: Any, variables: list[str]) -> dict[str, Any]:
    if backward is None:
        return {}
    if not isinstance(backward, Mapping):
        with at_key("backward"):
            raise SpecError(
                f"backward={backward!r} is not a table — write backward.x = \"<formula>\""
            )
    formulas = {}
    for name, source in backward.items():
        with at_key(f"backward.{name}"):
            formulas[name] = _formula(source, variables, f"backward.{name}")
    return formulas


def _check_output_indices(count: int | None, formulas: dict[str, Any]) -> None:
    """grad[k] and result[k] must name one of a tuple forward's ``count`` outputs."""
    if count is None:
        return
    for what, formula in formulas.items():
        for name in ("grad", "result"):
            for index in [] if formula is None else constant_indices(formula, name):
                if not -count <= index < count:
                    with at_key(what):
                        raise SpecError(
                            f"{quoted(what, formula.source)} reads {name}[{index}], but forward "
                            f"returns {count} outputs — index them {name}[0] to "
                            f"{name}[{count - 1}]")
