"""Tiny real problems for the range test: fast enough to train dozens of steps per test."""

import torch
from torch.utils.data import TensorDataset


def make_blobs(n: int = 256, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    labels = torch.randint(0, 3, (n,), generator=gen)
    inputs = centres[labels] + torch.randn(n, 4, generator=gen)
    return TensorDataset(inputs, labels)


def make_classifier(seed: int = 0) -> torch.nn.Module:
    """With BatchNorm (buffers) and Dropout (consumes the global RNG)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(16, 3),
    )
