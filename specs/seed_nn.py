"""The notebook's nn.Module example as a spec: SimpleLinearModel + MSELoss.

The module's parameters ("linear.weight", "linear.bias") are the inputs whose
gradients are checked; X and Y are data. The explicit example is the notebook's
initial parameters and its printed gradients (parameters rounded to 4 decimals
there, so the gradients match to about 1e-3).
"""

import torch
from torch import nn

from harness import Input, Spec


class SimpleLinearModel(nn.Module):
    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


simple_linear_mse = Spec.from_module(
    SimpleLinearModel(2, 1),
    inputs={
        "X": Input(("N", 2), requires_grad=False),
        "Y": Input(("N", 1), requires_grad=False),
    },
    forward=lambda model, X, Y: nn.MSELoss()(model(X), Y),
    dims={"N": (1, 8)},
    doc="nn.Linear(2, 1) under nn.MSELoss: gradients of the loss for the layer's parameters",
    examples=[{
        "X": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
        "Y": [[3.0], [7.0], [11.0]],
        "linear.weight": [[-0.2435, 0.2167]],
        "linear.bias": [-0.1473],
        "expected": {"linear.weight": [[-52.8770, -66.8994]], "linear.bias": [-14.0224]},
        "rtol": 1e-3,
    }],
)
