"""Shared fixtures for the server tests: small checkpoints with random weights (no training).

Random weights are enough: the server must give the library's answer whatever the weights,
and the library's answer (``recommend_users``, ``crossent recommend``) is the reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _serving_helpers import build_checkpoint


@pytest.fixture(scope="session")
def two_stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-stage checkpoint with titles."""
    return build_checkpoint(tmp_path_factory.mktemp("two_stage"))


@pytest.fixture(scope="session")
def one_stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A candidate-only checkpoint without titles."""
    return build_checkpoint(tmp_path_factory.mktemp("one_stage"), ranking=False, titles=False)
