"""Baselines every recommender result is shown beside: most popular and EASE.

Both follow the :class:`~crossent.recsys.evaluation.protocol.Scorer` protocol: ``fit(train)``
returns the
fitted object and ``score(users, watched)`` gives ``(B, n_items)`` scores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from crossent._validation.numbers import check_number
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions

#: Largest catalogue :class:`EASE` accepts by default: a 20,000 x 20,000 float64 matrix is
#: 3.2 GB, and the fit holds one such matrix (plus a transient copy while symmetrising).
EASE_MAX_ITEMS = 20_000


def _not_fitted(name: str) -> CrossentError:
    return CrossentError(f"{name} is not fitted; call .fit(train) first")


class MostPopular:
    """Score every item by how often it occurs in the training rows (the same for every user).

    Example:
        >>> from crossent.recsys.data.interactions import Interactions
        >>> train = Interactions.from_arrays([0, 0, 1, 2], ["a", "b", "a", "a"])
        >>> popular = MostPopular().fit(train)  # items "a", "b" are 0, 1: watched 3 and 1 times
        >>> no_watches = (np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64))
        >>> popular.score(np.array([0, 1]), no_watches).tolist()
        [[3.0, 1.0], [3.0, 1.0]]
    """

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, train: Interactions) -> MostPopular:
        self.counts = np.bincount(train.item, minlength=train.n_items).astype(np.float64)
        return self

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``(B, n_items)`` training counts, one identical row per user (a read-only view)."""
        if self.counts is None:
            raise _not_fitted("MostPopular")
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))


def _binary_matrix(indptr: np.ndarray, items: np.ndarray, n_items: int) -> scipy.sparse.csr_matrix:
    """The 0/1 user x item matrix of CSR past watches (repeats collapse to 1)."""
    data = np.ones(len(items), dtype=np.float64)
    matrix = scipy.sparse.csr_matrix((data, items, indptr), shape=(len(indptr) - 1, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class EASE:
    r"""Embarrassingly Shallow Autoencoder: a closed-form item-item linear model.

    With ``X`` the binary (users x items) training matrix, EASE solves

    .. math::
        \min_B \|X - XB\|_F^2 + \lambda \|B\|_F^2 \quad \text{s.t. } \operatorname{diag}(B) = 0

    whose solution is ``B = I - P diagMat(1 / diag(P))`` with ``P = (X^T X + lambda I)^{-1}``,
    i.e. ``B_ij = -P_ij / P_jj`` off the diagonal. A user's scores are ``x_u B`` where ``x_u``
    is the 0/1 vector of the items they watched.

    Memory and time: the fit builds the dense ``n_items x n_items`` Gram matrix and inverts it in
    place (Cholesky, LAPACK ``potrf`` + ``potri``): ``8 n_items^2`` bytes and ``O(n_items^3)``
    time, on one BLAS thread, because OpenBLAS' multi-threaded ``syrk`` inside ``potrf`` writes
    out of bounds on large float64 matrices and kills the process. Catalogues above
    ``max_items`` (default :data:`EASE_MAX_ITEMS` = 20,000, i.e. 3.2 GB) are refused; filter
    rare items first (:func:`~crossent.recsys.data.interactions.k_core`).

    Args:
        lam: the L2 weight ``lambda`` (> 0). The default 200 is the best of
            {50, 100, 200, 500, 1000, 2000} on the validation stage of ml-latest-small
            (ratings >= 4, leave-last-out); tune it on the validation stage of your data.
        max_items: the largest catalogue to accept.
        dtype: ``numpy.float64`` (default) or ``numpy.float32``, which halves memory and time;
            the Gram matrix is well conditioned for ``lam`` of a few hundred, so rankings agree.

    References:
        Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
    """

    def __init__(
        self,
        lam: float = 200.0,
        *,
        max_items: int = EASE_MAX_ITEMS,
        dtype: type[np.floating] = np.float64,
    ) -> None:
        check_number(lam, "lam", low=0.0, low_open=True)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise CrossentError(f"dtype = {dtype!r} must be numpy.float32 or numpy.float64")
        self.lam = float(lam)
        self.max_items = max_items
        self.dtype = np.dtype(dtype)
        self.weights: np.ndarray | None = None

    def fit(self, train: Interactions) -> EASE:
        n_items = train.n_items
        if n_items > self.max_items:
            gib = self.dtype.itemsize * n_items**2 / 2**30
            raise CrossentError(
                f"EASE needs a dense {n_items} x {n_items} matrix ({gib:.1f} GiB); n_items = "
                f"{n_items} exceeds max_items = {self.max_items}. Filter rare items (k_core) or "
                "raise max_items if you have the memory"
            )
        indptr, items = train.sequences()
        matrix = _binary_matrix(indptr, items, n_items)
        # (n_items, n_items) co-occurrence counts; symmetric, so its transpose is the same
        # matrix in Fortran order, which LAPACK overwrites in place without a copy
        gram = (matrix.T @ matrix).toarray().astype(self.dtype, copy=False).T
        gram[np.diag_indices(n_items)] += self.lam
        potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
        # Cholesky-based inverse in place: only the upper triangle of the result is written.
        # One BLAS thread: OpenBLAS' threaded syrk, which potrf calls, segfaults on large
        # float64 matrices (docs/ARCHITECTURE.md, "EASE runs LAPACK on one thread").
        with threadpool_limits(limits=1, user_api="blas"):
            factor, info = potrf(gram, lower=0, overwrite_a=1, clean=0)
            if info != 0:
                raise CrossentError(f"EASE: X^T X + lam I is not positive definite (info={info})")
            inverse, info = potri(factor, lower=0, overwrite_c=1)
        if info != 0:
            raise CrossentError(f"EASE: inverting X^T X + lam I failed (info={info})")
        _symmetrise_from_upper(inverse)
        diagonal = np.diag(inverse).copy()
        inverse /= -diagonal[None, :]  # B_ij = -P_ij / P_jj
        inverse[np.diag_indices(n_items)] = 0.0
        self.weights = inverse
        return self

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``(B, n_items)`` scores ``x_u B`` for the batch's past watches."""
        if self.weights is None:
            raise _not_fitted("EASE")
        indptr, items = watched
        matrix = _binary_matrix(indptr, items, self.weights.shape[0])
        return np.asarray(matrix @ self.weights)


def _symmetrise_from_upper(matrix: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one, in place, a block of rows at a time."""
    n = matrix.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        # rows start:stop, columns < start come from the transposed upper block
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        square = matrix[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        square[lower] = square.T[lower]
