"""The demo's default world: the sequence model near the Bayes limit, above EASE and the bag.

The references are the simulator's exact next-watch distributions: their mean entropy is the
lowest expected cross-entropy any model can reach (Gibbs' inequality), and the truth's own
ranking is the oracle.
"""

from __future__ import annotations

import dataclasses

import pytest

from crossent.recsys.run import demo_setup, run


def measure_demo_world(seed: int) -> dict[str, float]:
    """The demo's world and retrieval schedule (``demo_setup``), world and training seeded."""
    config, spec = demo_setup(seed=seed)
    result = run(dataclasses.replace(spec, stage="retrieval"), config, progress=False)
    model, bag = result.cross_entropy, result.baseline_cross_entropy["bag model"]
    bayes = model["bayes_nats"]
    ease = next(value for name, value in result.retrieval.items() if name.startswith("EASE"))
    oracle, sequence = result.retrieval["truth (oracle)"], result.retrieval["model"]
    values = {
        "expected nats / Bayes": model["expected_nats"] / bayes,
        "test nats / Bayes": model["nats"] / bayes,
        "bag expected nats / Bayes": bag["expected_nats"] / bayes,
    }
    for metric in ("HR@10", "NDCG@10"):
        values[f"{metric} model - EASE"] = sequence[metric] - ease[metric]
        values[f"{metric} model - oracle"] = sequence[metric] - oracle[metric]
    return values


@pytest.mark.slow
@pytest.mark.statistical
def test_the_sequence_model_is_near_the_bayes_limit_and_above_ease():
    values = measure_demo_world(0)
    # Gibbs: no model's expected cross-entropy is below the Bayes limit
    assert values["expected nats / Bayes"] >= 1 and values["bag expected nats / Bayes"] >= 1
    # the demo's target, 3% (README); the bounds sit at least 5 sd beyond the mean over 20
    # seeds (docs/TESTING.md), so another CPU's numerics, which act like another seed, pass too
    assert values["expected nats / Bayes"] < 1.03
    assert values["test nats / Bayes"] < 1.04  # on the drawn test watches too
    # the order carries signal that a bag of the history cannot see
    assert values["bag expected nats / Bayes"] > 1.1
    for metric in ("HR@10", "NDCG@10"):
        assert values[f"{metric} model - EASE"] > 0
        assert values[f"{metric} model - oracle"] <= 0.02
