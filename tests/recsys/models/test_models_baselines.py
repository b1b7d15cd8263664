"""MostPopular and EASE against direct NumPy formulations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import lapack
from threadpoolctl import threadpool_info, threadpool_limits

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models import baselines
from crossent.recsys.models.baselines import EASE, MostPopular


def _random_log(seed: int, n_users: int = 15, n_items: int = 9, n: int = 60) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions.from_arrays(
        rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, 100, n)
    )


def _dense(inter: Interactions) -> np.ndarray:
    matrix = np.zeros((inter.n_users, inter.n_items))
    matrix[inter.user, inter.item] = 1.0  # repeats collapse to 1
    return matrix


def _as_csr(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(matrix)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(matrix)))])
    return indptr, cols


def test_most_popular_scores_are_training_counts_for_every_user() -> None:
    inter = Interactions.from_arrays([1, 2, 3, 1], ["a", "b", "b", "b"], [0, 1, 2, 3])
    model = MostPopular().fit(inter)
    scores = model.score(np.array([0, 1]), (np.array([0, 0, 0]), np.array([], dtype=np.int64)))
    assert scores.shape == (2, 2)
    assert scores.tolist() == [[1.0, 3.0], [1.0, 3.0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.5, 10.0])
def test_ease_weights_solve_each_column_as_a_ridge_regression(seed: int, lam: float) -> None:
    # EASE's constrained problem decouples by column: column j regresses x_j on the other
    # items' columns with an L2 penalty lam (diag(B) = 0 removes item j from its own inputs).
    inter = _random_log(seed)
    matrix = _dense(inter)
    weights = EASE(lam).fit(inter).weights
    assert weights is not None
    n_items = matrix.shape[1]
    for j in range(n_items):
        others = [i for i in range(n_items) if i != j]
        inputs = matrix[:, others]
        ridge = np.linalg.solve(
            inputs.T @ inputs + lam * np.eye(n_items - 1), inputs.T @ matrix[:, j]
        )
        np.testing.assert_allclose(weights[others, j], ridge, rtol=1e-9, atol=1e-12)
        assert weights[j, j] == 0.0


def test_ease_matches_steck_closed_form_and_scores_histories() -> None:
    inter = _random_log(3)
    matrix = _dense(inter)
    lam = 2.0
    inverse = np.linalg.inv(matrix.T @ matrix + lam * np.eye(matrix.shape[1]))
    closed_form = np.eye(matrix.shape[1]) - inverse / np.diag(inverse)[None, :]
    model = EASE(lam).fit(inter)
    np.testing.assert_allclose(model.weights, closed_form, atol=1e-12)
    history = np.zeros((2, matrix.shape[1]))
    history[0, [1, 4]] = 1.0
    history[1, [0]] = 1.0
    users = np.array([0, 1])
    np.testing.assert_allclose(
        model.score(users, _as_csr(history)), history @ closed_form, atol=1e-12
    )


def test_ease_counts_a_repeated_history_item_once() -> None:
    inter = _random_log(4)
    model = EASE(5.0).fit(inter)
    once = model.score(np.array([0]), (np.array([0, 1]), np.array([2])))
    twice = model.score(np.array([0]), (np.array([0, 2]), np.array([2, 2])))
    np.testing.assert_array_equal(once, twice)


def test_ease_float32_agrees_with_float64() -> None:
    inter = _random_log(5, n_users=40, n_items=30, n=300)
    single = EASE(20.0, dtype=np.float32).fit(inter).weights
    double = EASE(20.0).fit(inter).weights
    assert single is not None and single.dtype == np.float32
    np.testing.assert_allclose(single, double, atol=1e-5)


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_ease_inverts_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenBLAS' threaded syrk inside potrf segfaults on large float64 matrices (about 15,500
    # items on 2 cores), so the inverse runs on one thread whatever the caller's setting.
    seen: list[set[int]] = []

    class SpyLapack:
        @staticmethod
        def get_lapack_funcs(names, arrays):  # type: ignore[no-untyped-def]
            def spy(function):  # type: ignore[no-untyped-def]
                def call(*args, **kwargs):  # type: ignore[no-untyped-def]
                    seen.append(_blas_threads())
                    return function(*args, **kwargs)

                return call

            return tuple(spy(f) for f in lapack.get_lapack_funcs(names, arrays))

    monkeypatch.setattr(baselines, "lapack", SpyLapack)
    inter = _random_log(7, n_users=40, n_items=30, n=300)
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        weights = EASE(20.0).fit(inter).weights
        assert _blas_threads() == {2}  # the caller's setting is restored
    assert seen == [{1}, {1}]  # potrf, then potri
    np.testing.assert_allclose(weights, EASE(20.0).fit(inter).weights, rtol=0, atol=0)


def test_ease_refuses_a_catalogue_above_max_items() -> None:
    inter = _random_log(6, n_items=9)
    with pytest.raises(CrossentError, match=r"n_items = \d exceeds max_items = 5"):
        EASE(1.0, max_items=5).fit(inter)


def test_baseline_argument_errors() -> None:
    with pytest.raises(CrossentError, match=r"lam = 0.0 must be a finite number > 0"):
        EASE(0.0)
    with pytest.raises(CrossentError, match=r"dtype = .* must be numpy.float32 or numpy.float64"):
        EASE(1.0, dtype=np.int64)  # type: ignore[arg-type]
    empty_history = (np.array([0, 0]), np.array([], dtype=np.int64))
    with pytest.raises(CrossentError, match=r"EASE is not fitted; call .fit\(train\) first"):
        EASE().score(np.array([0]), empty_history)
    with pytest.raises(CrossentError, match="MostPopular is not fitted"):
        MostPopular().score(np.array([0]), empty_history)
