"""Calling user callables by keyword, with only the names they ask for."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from harness.errors import SpecError, did_you_mean

_NOT_FOR_CATCH_ALL = {"dim"}


class KeywordCall:
    """A forward, backward, jvp or reference callable with its parameters resolved.

    ``variables`` maps every name the callable may ask for to its kind ("input",
    "dim", "cotangent", "output", "tangent"). A parameter outside it is a spec
    error, found here at load rather than mid-run. A catch-all ``**kwargs``
    receives every variable but the dims: name a dim as a parameter to get it.
    """

    def __init__(self, fn: Callable[..., Any], role: str, variables: Mapping[str, str]):
        if not callable(fn):
            raise SpecError(f"{role}={fn!r} is not callable — give a function or a formula")
        self.fn = fn
        self.role = role
        self.names = _wanted_names(fn, role, variables)

    def __call__(self, values: Mapping[str, Any]) -> Any:
        return self.fn(**{name: values[name] for name in self.names if name in values})

    def __repr__(self) -> str:
        return f"<{self.role}: {getattr(self.fn, 'source', self.fn)!r}>"


def _wanted_names(fn, role: str, variables: Mapping[str, str]) -> tuple[str, ...]:
    formula_names = getattr(fn, "names", None)
    if isinstance(formula_names, frozenset):
        return _checked_names(sorted(formula_names), role, variables)
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature take the inputs
        return tuple(n for n, kind in variables.items() if kind not in _NOT_FOR_CATCH_ALL)
    names = []
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            names += [n for n, kind in variables.items() if kind not in _NOT_FOR_CATCH_ALL]
        elif parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
            raise SpecError(
                f"{role} takes {parameter} positionally — the harness passes "
                f"{', '.join(variables)} by keyword; make it a keyword parameter"
            )
        elif parameter.name in variables:
            names.append(parameter.name)
        elif parameter.default is parameter.empty:
            raise SpecError(
                f"{role} takes parameter {parameter.name!r}, which is none of "
                f"{', '.join(variables)}{did_you_mean(parameter.name, variables)} — "
                f"rename it or give it a default"
            )
    return tuple(dict.fromkeys(names))


def _checked_names(names, role: str, variables: Mapping[str, str]) -> tuple[str, ...]:
    for name in names:
        if name not in variables:
            raise SpecError(
                f"{role} uses {name!r}, which is none of {', '.join(variables)}"
                f"{did_you_mean(name, variables)}"
            )
    return tuple(names)
