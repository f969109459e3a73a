import pytest
import torch
from torch import nn


class Small(nn.Module):
    """Three layer groups and a norm: stem (conv + batch norm), body (linear), head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.body = nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).mean(dim=(2, 3))
        x = nn.functional.pad(x, (0, 6))
        return self.head(torch.relu(self.body(x)))


@pytest.fixture
def small() -> Small:
    torch.manual_seed(0)
    return Small()
