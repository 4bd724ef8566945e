"""nn.Module specs: a module's parameters become inputs through torch.func.functional_call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch

from harness.errors import SpecError
from harness.spec.calls import KeywordCall
from harness.spec.input import Input


def module_spec_parts(
    module: Any,
    data_inputs: Mapping[str, Input],
    forward: Callable[..., Any] | None,
    low: float,
    high: float,
) -> tuple[dict[str, Input], Callable[..., Any]]:
    """The inputs (data, then parameters) and the forward of a module spec."""
    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"module={module!r} is not a torch.nn.Module")
    parameters = dict(module.named_parameters())
    clash = sorted(set(parameters) & set(data_inputs))
    if clash:
        raise SpecError(
            f"input {clash[0]!r} has the name of a parameter of the module — rename the input"
        )
    inputs = dict(data_inputs)  # nn.Sequential's "0.weight" is kept: dots separate the path
    for name, parameter in parameters.items():
        inputs[name] = Input(
            tuple(parameter.shape), low=low, high=high, requires_grad=parameter.requires_grad
        )
    data_names = tuple(data_inputs)
    if forward is not None:  # validated like any forward: model, then data by name
        KeywordCall(forward, "forward", {"model": "module", **dict.fromkeys(data_names, "input")})

    def run(**values: torch.Tensor) -> torch.Tensor:
        params = {name: values[name] for name in parameters}
        device = next(iter(params.values())).device
        buffers = {name: b.to(device) for name, b in module.named_buffers()}
        model = partial(torch.func.functional_call, module, {**params, **buffers})
        data = {name: values[name] for name in data_names}
        if forward is None:
            return model(tuple(data.values()))
        return forward(lambda *args, **kwargs: model(args, kwargs), **data)

    return inputs, run
