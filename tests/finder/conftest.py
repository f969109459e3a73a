"""Fixtures of the finder tests (the problems themselves are in finder_problems.py)."""

import random

import numpy as np
import pytest
import torch
from finder_problems import make_blobs
from torch.utils.data import DataLoader


@pytest.fixture
def blobs_loader() -> DataLoader:
    return DataLoader(make_blobs(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def seeded():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
