"""Shared fixtures for the recommender tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# <repo>/../shared/data, the project's real data (absent on some machines)
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MOVIELENS_SMALL = SHARED_DATA / "ml-latest-small"


@pytest.fixture(scope="session")
def movielens_small() -> Path:
    """The ml-latest-small folder; skips the test when it is not there."""
    if not (MOVIELENS_SMALL / "ratings.csv").is_file():
        pytest.skip(f"MovieLens data not found at {MOVIELENS_SMALL.resolve()}")
    return MOVIELENS_SMALL
AMAZON_VIDEO = SHARED_DATA / "amazon-video" / "Video.txt"


@pytest.fixture(scope="session")
def amazon_video() -> Path:
    """SASRec's Amazon Video Games sequences (``user item`` lines); skips when absent."""
    if not AMAZON_VIDEO.is_file():
        pytest.skip(f"Amazon Video data not found at {AMAZON_VIDEO.resolve()}")
    return AMAZON_VIDEO
