"""The demo's default world: the sequence model near the Bayes limit, above EASE and the bag.

The references are the simulator's exact next-watch distributions: their mean entropy is the
lowest expected cross-entropy any model can reach (Gibbs' inequality), and the truth's own
ranking is the oracle.
"""

from __future__ import annotations

import pytest

from crossent.recsys.pipeline import run_simulated
from crossent.recsys.run import demo_setup


@pytest.mark.slow
def test_the_sequence_model_is_within_3_percent_of_the_bayes_limit_and_above_ease():
    config, request, _ = demo_setup()
    result, _ = run_simulated(
        config,
        objectives=request.objectives,
        model_config=request.model_config(),
        train_config=request.train,
        stages=("retrieval",),
        progress=False,
    )
    model, bag = result.cross_entropy, result.baseline_cross_entropy["bag model"]
    bayes = model["bayes_nats"]
    assert bayes <= model["expected_nats"] and bayes <= bag["expected_nats"]  # Gibbs
    assert model["expected_nats"] < 1.03 * bayes
    assert model["nats"] < 1.03 * bayes  # on the drawn test watches too
    # the order carries signal that a bag of the history cannot see
    assert bag["expected_nats"] > 1.1 * bayes
    ease = next(value for name, value in result.retrieval.items() if name.startswith("EASE"))
    oracle = result.retrieval["truth (oracle)"]
    for metric in ("HR@10", "NDCG@10"):
        assert ease[metric] < result.retrieval["model"][metric] <= oracle[metric] + 0.02
