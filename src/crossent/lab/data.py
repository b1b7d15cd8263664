"""Data sets for the loss lab: bundled, synthetic (known Bayes error), imbalanced, or any CSV.

Nothing here downloads: the real data sets are the files scikit-learn ships inside its wheel
(``sklearn.datasets.load_digits``, ``load_breast_cancer``, ``load_wine``), the synthetic one is
generated, and a CSV is read by :mod:`crossent.io` so every bad value is reported with its file,
line and column.

**Minority classes.** Classes ordered by size (ties by class index), the smaller half:
``max(1, C // 2)`` classes. Two-class data: the smaller class; wine: the smallest of three;
digits: five of ten. ``--imbalance f`` keeps a fraction ``f`` (at least
:data:`MIN_KEPT_PER_CLASS` rows) of every minority class, drawn at random with ``data_seed``, so
the train, validation and test splits each still see the class. Minority-class recall in the lab
is the mean recall over these classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossent import io
from crossent._validation.numbers import check_number
from crossent.errors import CrossentError, DataFileError
from crossent.io import tables

DATASETS = ("digits", "breast_cancer", "wine", "synthetic")
MIN_KEPT_PER_CLASS = 5

# The synthetic set: two Gaussians with a shared covariance, so the Bayes classifier is linear
# and its error has a closed form (see :func:`gaussian_bayes_error`), and 5% label noise.
SYNTHETIC_MEANS = np.array([[0.0, 0.0], [4.0, 2.5]])
SYNTHETIC_COVARIANCE = np.array([[1.0, 0.5], [0.5, 1.5]])
SYNTHETIC_PER_CLASS = 1000
# Labels flipped at random, as in real data: a model that is confidently wrong on them pays.
SYNTHETIC_LABEL_NOISE = 0.05


@dataclass(frozen=True)
class LabData:
    """A classification data set: features (N, D) float64, labels (N,) in [0, C).

    ``bayes_error`` and ``bayes_log_loss_bits`` are set only where the true distribution is known
    (the synthetic set): the lowest error rate and the lowest cross-entropy any model can reach.
    """

    name: str
    features: np.ndarray  # (N, D)
    labels: np.ndarray  # (N,) int64
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    bayes_error: float | None = None
    bayes_log_loss_bits: float | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    @property
    def minority_classes(self) -> tuple[int, ...]:
        """The smaller half of the classes by count (ties broken by class index)."""
        order = sorted(range(self.n_classes), key=lambda c: (int(self.class_counts[c]), c))
        return tuple(sorted(order[: max(1, self.n_classes // 2)]))


def load_dataset(name: str, *, imbalance: float | None = None, data_seed: int = 0) -> LabData:
    """One of :data:`DATASETS`, optionally made imbalanced (see the module docstring).

    Raises:
        CrossentError: ``name`` is not a known data set, or ``imbalance`` is not in (0, 1].
    """
    if name == "synthetic":
        return synthetic_gaussians(imbalance=imbalance, data_seed=data_seed)
    if name not in DATASETS:
        raise CrossentError(f"dataset = {name!r} is unknown; valid: {', '.join(DATASETS)}")
    from sklearn import datasets

    bunch = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }[name]()
    data = LabData(
        name=name,
        features=np.asarray(bunch.data, dtype=np.float64),
        labels=np.asarray(bunch.target, dtype=np.int64),
        class_names=tuple(str(c) for c in bunch.target_names),
        feature_names=tuple(str(f) for f in getattr(bunch, "feature_names", ()))
        or tuple(f"x{i}" for i in range(bunch.data.shape[1])),
    )
    return data if imbalance is None else make_imbalanced(data, imbalance, data_seed=data_seed)


def make_imbalanced(data: LabData, fraction: float, *, data_seed: int = 0) -> LabData:
    """Keep ``fraction`` of each minority class (at least ``MIN_KEPT_PER_CLASS`` rows)."""
    check_imbalance(fraction)
    rng = np.random.default_rng(data_seed)
    keep = np.ones(len(data.labels), dtype=bool)
    for c in data.minority_classes:
        rows = np.flatnonzero(data.labels == c)
        n_keep = min(len(rows), max(MIN_KEPT_PER_CLASS, math.ceil(fraction * len(rows))))
        dropped = rng.permutation(rows)[n_keep:]
        keep[dropped] = False
    return replace(
        data,
        name=f"{data.name} (imbalanced {fraction:g})",
        features=data.features[keep],
        labels=data.labels[keep],
    )


def check_imbalance(fraction: float) -> None:
    """Raise unless ``fraction`` is a number in (0, 1]."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
        raise CrossentError(f"imbalance = {fraction!r} must be a fraction in (0, 1]")


def gaussian_bayes_error(
    means: np.ndarray,
    covariance: np.ndarray,
    priors: tuple[float, float],
    label_noise: float = 0.0,
) -> tuple[float, float]:
    """Bayes error and Bayes cross-entropy (bits) of two Gaussians with a shared covariance.

    The clean log-odds s(x) = w·x + b, w = Σ⁻¹(μ₁ - μ₀), is Gaussian under each class with
    variance Δ² (Δ = Mahalanobis distance between the means) and mean ±Δ²/2 + L,
    L = ln(π₁/π₀). The clean Bayes error is therefore

    .. math::
        P = \\pi_1 \\Phi\\left(-\\frac{\\Delta^2/2 + L}{\\Delta}\\right)
          + \\pi_0 \\Phi\\left(\\frac{L - \\Delta^2/2}{\\Delta}\\right).

    Labels flipped with probability η (< 1/2) leave the decision boundary where it is and make the
    posterior of the observed label η + (1 - 2η) σ(s), so the Bayes error is η + (1 - 2η) P, and
    the Bayes cross-entropy E[-log₂ posterior(observed label)] = E[H₂(η + (1 - 2η) σ(s))] is a 1-D
    Gaussian integral per class (Gauss–Hermite, 120 nodes).
    """
    pi0, pi1 = priors
    diff = means[1] - means[0]
    delta = float(np.sqrt(diff @ np.linalg.solve(covariance, diff)))
    log_prior_ratio = math.log(pi1 / pi0)
    half = delta**2 / 2.0
    clean_error = pi1 * _normal_cdf(-(half + log_prior_ratio) / delta) + pi0 * _normal_cdf(
        (log_prior_ratio - half) / delta
    )
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)  # ∫ f(z) φ(z) dz ≈ Σ w f(z) / √2π
    weights = weights / math.sqrt(2.0 * math.pi)
    bits = 0.0
    for prior, centre in ((pi1, half + log_prior_ratio), (pi0, log_prior_ratio - half)):
        clean_posterior = 1.0 / (1.0 + np.exp(-(centre + delta * nodes)))
        posterior = label_noise + (1.0 - 2.0 * label_noise) * clean_posterior
        bits += prior * float(np.sum(weights * _binary_entropy_bits(posterior)))
    return label_noise + (1.0 - 2.0 * label_noise) * clean_error, bits


def _binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def synthetic_gaussians(
    *,
    imbalance: float | None = None,
    data_seed: int = 0,
    per_class: int = SYNTHETIC_PER_CLASS,
    label_noise: float = SYNTHETIC_LABEL_NOISE,
) -> LabData:
    """Two 2-D Gaussians (:data:`SYNTHETIC_MEANS`, :data:`SYNTHETIC_COVARIANCE`), noisy labels.

    Class 0 draws ``per_class`` points; class 1 draws ``per_class`` points, or
    ``imbalance * per_class`` (at least ``MIN_KEPT_PER_CLASS``) when imbalanced. The priors are
    those counts' proportions. Then every label is flipped with probability ``label_noise``. The
    Bayes error and Bayes cross-entropy are computed exactly for these priors and this noise.
    """
    if not 0.0 <= label_noise < 0.5:
        check_number(label_noise, "label_noise", low=0.0, high=0.5, high_open=True)
    n1 = per_class
    if imbalance is not None:
        check_imbalance(imbalance)
        n1 = min(per_class, max(MIN_KEPT_PER_CLASS, math.ceil(imbalance * per_class)))
    rng = np.random.default_rng(data_seed)
    cholesky = np.linalg.cholesky(SYNTHETIC_COVARIANCE)
    features = np.concatenate(
        [
            SYNTHETIC_MEANS[0] + rng.standard_normal((per_class, 2)) @ cholesky.T,
            SYNTHETIC_MEANS[1] + rng.standard_normal((n1, 2)) @ cholesky.T,
        ]
    )
    clean = np.concatenate([np.zeros(per_class, np.int64), np.ones(n1, np.int64)])
    labels = np.where(rng.random(len(clean)) < label_noise, 1 - clean, clean)
    total = per_class + n1
    error, log_loss_bits = gaussian_bayes_error(
        SYNTHETIC_MEANS, SYNTHETIC_COVARIANCE, (per_class / total, n1 / total), label_noise
    )
    name = "synthetic" if imbalance is None else f"synthetic (imbalanced {imbalance:g})"
    return LabData(
        name=name,
        features=features,
        labels=labels,
        class_names=("0", "1"),
        feature_names=("x0", "x1"),
        bayes_error=error,
        bayes_log_loss_bits=log_loss_bits,
    )


def load_csv(
    path: str | Path, target: str, *, imbalance: float | None = None, data_seed: int = 0
) -> LabData:
    """A CSV with a header row: every column but ``target`` is a numeric feature.

    Read by :mod:`crossent.io` (the project's one reader: blocks, line numbers, one rule for
    missing values). The target may hold any labels (strings or numbers); classes are its
    distinct values, sorted (numerically when all are numbers).

    Raises:
        CrossentError: the file is missing or empty, ``target`` is not a column, a feature value is
            missing, not a number or not finite (naming file, line and column; the first such
            line), a row has the wrong number of fields, the target has fewer than two classes,
            or a class has fewer than 3 rows (one each for train, validation and test).
    """
    path = io.require_file(path)
    text = io.TextOptions("\t" if io.file_format(path) == "tsv" else ",")
    header = io.columns_of(path, text)
    if not any(header):
        raise DataFileError(str(path), 1, "empty file: expected a header row")
    if target not in header:
        raise DataFileError(
            str(path), 1, f"target column {target!r} not found; columns: {', '.join(header)}"
        )
    if len(header) < 2:
        raise DataFileError(str(path), 1, "no feature columns besides the target")
    feature_names = [name for name in header if name != target]
    table = io.read_table(path, header, float_columns=feature_names, text=text)
    tables.check_lines(table)
    if table.lines.shape[0] == 0:
        raise DataFileError(str(path), 2, "no data rows after the header")
    found: list[DataFileError] = []
    features = []
    for name in feature_names:
        try:
            features.append(tables.numbers(table, name))
        except DataFileError as error:
            found.append(error)
    try:
        raw_labels = pc.dictionary_encode(tables.ids(table, target).cast(pa.string()))
    except DataFileError as error:
        found.append(error)
    if found:
        raise min(found, key=lambda error: error.line or 0)
    entries = [str(entry) for entry in raw_labels.dictionary.to_pylist()]
    class_names = _sorted_labels(set(entries))
    if len(class_names) < 2:
        raise DataFileError(
            str(path),
            None,
            f"target has a single class ({class_names[0]!r}); classification needs at least two",
            column=target,
        )
    position = {name: i for i, name in enumerate(class_names)}
    codes = np.array([position[entry] for entry in entries], dtype=np.int64)
    labels = codes[np.asarray(raw_labels.indices, dtype=np.int64)]
    counts = np.bincount(labels, minlength=len(class_names))
    for c, count in enumerate(counts):
        if count < 3:
            raise DataFileError(
                str(path),
                None,
                f"class {class_names[c]!r} has {count} row(s); each class needs at least 3 "
                "(train, validation, test)",
                column=target,
            )
    data = LabData(
        name=path.name,
        features=np.stack(features, axis=1).astype(np.float64),
        labels=labels,
        class_names=tuple(class_names),
        feature_names=tuple(feature_names),
    )
    return data if imbalance is None else make_imbalanced(data, imbalance, data_seed=data_seed)


def _sorted_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)
