"""Loss-lab data: the exact Bayes error of the synthetic set, imbalance, CSV errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from scipy.stats import multivariate_normal, norm

from crossent.errors import CrossentError
from crossent.lab.data import (
    MIN_KEPT_PER_CLASS,
    SYNTHETIC_COVARIANCE,
    SYNTHETIC_MEANS,
    gaussian_bayes_error,
    load_csv,
    load_dataset,
    synthetic_gaussians,
)


def test_clean_equal_prior_bayes_error_is_phi_of_half_the_mahalanobis_distance() -> None:
    # textbook result for two Gaussians with a shared covariance and equal priors
    delta = mahalanobis(SYNTHETIC_MEANS[0], SYNTHETIC_MEANS[1], np.linalg.inv(SYNTHETIC_COVARIANCE))
    error, _ = gaussian_bayes_error(SYNTHETIC_MEANS, SYNTHETIC_COVARIANCE, (0.5, 0.5), 0.0)
    assert error == pytest.approx(norm.cdf(-delta / 2), rel=1e-12)


def measure_bayes_monte_carlo(
    priors: tuple[float, float], noise: float, seed: int
) -> dict[str, float]:
    """The exact Bayes error and cross-entropy against a Monte Carlo estimate, in its SEs."""
    rng = np.random.default_rng(seed)
    n = 400_000
    clean = (rng.random(n) < priors[1]).astype(int)
    points = np.where(
        clean[:, None] == 1,
        rng.multivariate_normal(SYNTHETIC_MEANS[1], SYNTHETIC_COVARIANCE, n),
        rng.multivariate_normal(SYNTHETIC_MEANS[0], SYNTHETIC_COVARIANCE, n),
    )
    observed = np.where(rng.random(n) < noise, 1 - clean, clean)
    # the true posterior of the observed label, from the densities (scipy) and the noise rate
    density = [multivariate_normal(m, SYNTHETIC_COVARIANCE).pdf(points) for m in SYNTHETIC_MEANS]
    clean_posterior = priors[1] * density[1] / (priors[0] * density[0] + priors[1] * density[1])
    posterior = noise + (1 - 2 * noise) * clean_posterior
    mistakes = (posterior > 0.5) != observed
    bits = -np.log2(np.where(observed == 1, posterior, 1 - posterior))
    error, exact_bits = gaussian_bayes_error(SYNTHETIC_MEANS, SYNTHETIC_COVARIANCE, priors, noise)
    return {
        "error z": (mistakes.mean() - error) / math.sqrt(error * (1 - error) / n),
        "bits z": (bits.mean() - exact_bits) / (bits.std(ddof=1) / math.sqrt(n)),
    }


@pytest.mark.statistical
@pytest.mark.parametrize(("priors", "noise"), [((0.5, 0.5), 0.05), ((0.8, 0.2), 0.1)])
def test_bayes_error_and_cross_entropy_match_monte_carlo(
    priors: tuple[float, float], noise: float
) -> None:
    # each estimate is N(exact, SE^2) for a right formula: 5 standard errors, whatever the seed
    values = measure_bayes_monte_carlo(priors, noise, 11)
    assert abs(values["error z"]) < 5.0
    assert abs(values["bits z"]) < 5.0


def test_synthetic_set_is_reproducible_and_imbalance_shrinks_class_one() -> None:
    first, again = synthetic_gaussians(data_seed=3), synthetic_gaussians(data_seed=3)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.labels, again.labels)
    imbalanced = synthetic_gaussians(imbalance=0.05, data_seed=3)
    assert len(imbalanced.labels) == 1000 + 50
    assert imbalanced.minority_classes == (1,)
    assert imbalanced.bayes_error is not None and first.bayes_error is not None
    assert imbalanced.bayes_error < first.bayes_error  # a lopsided prior is easier to guess


@pytest.mark.parametrize(
    ("name", "minority"),
    [("digits", (0, 2, 7, 8, 9)), ("breast_cancer", (0,)), ("wine", (2,))],
)
def test_imbalance_keeps_five_percent_of_the_smaller_half_of_the_classes(
    name: str, minority: tuple[int, ...]
) -> None:
    full = load_dataset(name)
    assert full.minority_classes == minority
    shrunk = load_dataset(name, imbalance=0.05)
    for c, count in enumerate(full.class_counts):
        expected = max(MIN_KEPT_PER_CLASS, math.ceil(0.05 * count)) if c in minority else int(count)
        assert shrunk.class_counts[c] == expected, c


def test_unknown_dataset_lists_the_valid_ones() -> None:
    with pytest.raises(CrossentError, match=r"dataset = 'mnist' is unknown; valid: digits"):
        load_dataset("mnist")


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1])
def test_imbalance_outside_zero_one_is_an_error(fraction: float) -> None:
    with pytest.raises(CrossentError, match=r"imbalance = .* must be a fraction in \(0, 1\]"):
        load_dataset("wine", imbalance=fraction)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_csv_loads_numeric_features_and_sorted_numeric_labels(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 0.5},{(10, 2, 33)[i % 3]}" for i in range(9))
    data = load_csv(write(tmp_path, "a,b,y\n" + rows + "\n"), "y")
    assert data.class_names == ("2", "10", "33")  # numeric order, not "10" < "2"
    assert data.feature_names == ("a", "b")
    np.testing.assert_array_equal(data.labels[:3], [1, 0, 2])
    np.testing.assert_allclose(data.features[4], [4.0, 2.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,y\n1,p\n2,q\nx,p\n", r"data.csv line 4, column 'a': value 'x' is not a number"),
        ("a,y\n1,p\n,q\n", r"data.csv line 3, column 'a': missing value"),
        ("a,y\n1,p\nnan,q\n", r"data.csv line 3, column 'a': missing value"),
        ("a,y\n1,p\ninf,q\n", r"data.csv line 3, column 'a': value 'inf' is not finite"),
        ("a,y\n1,p\n2,q\n3,\nx,q\n", r"data.csv line 4, column 'y': missing value"),
        ("a,b\n1,2\n", r"data.csv line 1: target column 'y' not found; columns: a, b"),
        ("a,y\n1,p\n2,p\n3,p\n", r"data.csv, column 'y': target has a single class \('p'\)"),
        ("a,y\n1,p\n2\n", r"data.csv line 3: the line has 1 fields, expected 2"),
        ("a,y\n1,p\n2,\n", r"data.csv line 3, column 'y': missing value"),
        ("", r"data.csv line 1: empty file"),
        ("a,y\n", r"data.csv line 2: no data rows"),
        ("y\n1\n", r"data.csv line 1: no feature columns"),
        (
            "a,y\n1,p\n2,p\n3,p\n4,q\n",
            r"data.csv, column 'y': class 'q' has 1 row\(s\); each class needs at least 3",
        ),
    ],
)
def test_bad_csv_names_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CrossentError, match=message):
        load_csv(write(tmp_path, text), "y")


def test_missing_csv_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CrossentError, match=r"nowhere.csv: no such file"):
        load_csv(tmp_path / "nowhere.csv", "y")
