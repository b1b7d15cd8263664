"""The model work behind a batch of requests: one call of ``recommend_histories`` for all.

Each request becomes a :class:`Question`: a watch history (contiguous item ids, oldest first:
a checkpoint user's own watches, or the ones posted for someone new) and its ``k``. A batch of
questions is one CSR of histories, answered by
:func:`crossent.recsys.serving.recommend.recommend_histories` at the batch's largest ``k``: one
encoder
pass and one blocked catalogue sweep, already-watched items excluded. Each question then takes
its first ``k`` rows. That is exactly its own answer: with a ranking stage the ranking model
re-ranks the same ``candidates`` shortlist whatever ``k`` (``k`` is capped at ``candidates``),
and without one the top ``k`` of a longer list are the top ``k``.

The rows are those of ``crossent recommend --json``: ``rank``, ``item`` (original id),
``score`` (the candidate model's logit), ``probability`` (P(next watch): the softmax over the
unwatched catalogue), ``p_watch`` with a ranking stage, and ``title`` when the model has
titles.

Example::

    engine = Engine(load_checkpoint("model"))
    [rows] = engine.answer([Question(history=np.array([3, 7]), k=5)])
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from crossent._validation.numbers import check_int
from crossent.recsys.serving.catalogue import Catalogue, _plain
from crossent.recsys.serving.recommend import DEFAULT_CELLS, recommend_histories

#: the largest k a request may ask for (and never more than the ranking shortlist)
MAX_K = 100


@dataclass(frozen=True)
class Question:
    """One request's history (``(n,)`` contiguous item ids, oldest first) and ``k``."""

    history: np.ndarray
    k: int


#: Batches between two returns of freed heap memory to the system (release_freed_heap).
TRIM_EVERY = 256


def release_freed_heap() -> None:
    """Hand the heap's freed pages back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere).

    Batches of every size and history length leave freed blocks of every size behind, which
    glibc keeps for reuse, so a long-running server's resident memory creeps up without
    holding more data; trimming now and then keeps it level. It costs well under a
    millisecond, hence every :data:`TRIM_EVERY` batches rather than every one.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


#: glibc's ``M_MMAP_THRESHOLD`` for a serving process: blocks of this size or more are mapped
#: on their own and unmapped when freed (see :func:`fix_mmap_threshold`).
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at ``size`` bytes; False where there is no glibc.

    By default glibc raises the threshold to the size of each mapped block it frees, so after
    a few batches a server's score and top-k buffers (hundreds of KiB, a different size for
    every batch size and history length) come from the heap instead, where they can leave it
    fragmented. Pinning the threshold keeps those buffers mapped, each returned to the system
    when freed; the cost is a fresh mapping (and its page faults) per large buffer and batch.
    ``crossent serve`` leaves glibc's default (the larger creep a server showed came from
    oneDNN's cache, see :func:`onednn_off`; the README's ``crossent serve`` section has the
    measurements). Call this before serving (or set the environment variable
    ``MALLOC_MMAP_THRESHOLD_``) where the flattest memory matters more than throughput.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False


_onednn_lock = threading.Lock()
_onednn_users = 0  # blocks inside onednn_off, over all threads
_onednn_before = True


@contextmanager
def onednn_off() -> Iterator[None]:
    """Run the block with torch's oneDNN kernels off (its own kernels instead), then restore.

    oneDNN compiles a primitive for each tensor shape it meets and keeps up to 1,024 of them.
    Training meets a few shapes; a server meets a new one with nearly every batch (the batch
    size times the group's history length), so with oneDNN on, each new shape adds to the
    resident memory until the cache is full. The element-wise activations that reach oneDNN
    on CPU have native kernels of the same speed (README, ``crossent serve``).

    The switch is process-wide, so blocks on several threads share it: the first to enter
    turns oneDNN off, the last to leave restores it (a server's workers overlap).

    >>> import torch
    >>> with onednn_off():
    ...     print(torch.backends.mkldnn.enabled)
    False
    """
    global _onednn_users, _onednn_before
    with _onednn_lock:
        if _onednn_users == 0:
            _onednn_before = bool(torch.backends.mkldnn.enabled)
            # the module's ``enabled`` is a property that torch's stubs type as its descriptor
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        _onednn_users += 1
    try:
        yield
    finally:
        with _onednn_lock:
            _onednn_users -= 1
            if _onednn_users == 0:
                torch.backends.mkldnn.enabled = _onednn_before  # type: ignore[assignment]


class Engine:
    """Answers batches of :class:`Question` from one checkpoint (see the module docstring).

    Args:
        catalogue: the checkpoint's ids and titles.
        candidates: with a ranking stage, how many candidates it re-ranks.
        cells: logits held at once in the catalogue sweep (bounds the memory).
    """

    def __init__(
        self, catalogue: Catalogue, *, candidates: int = 100, cells: int = DEFAULT_CELLS
    ) -> None:
        self.catalogue = catalogue
        self.checkpoint = catalogue.checkpoint
        self.candidates = check_int(candidates, "candidates", low=1)
        self.cells = check_int(cells, "cells", low=1)
        self.two_stage = self.checkpoint.ranking is not None
        self.max_k = min(MAX_K, catalogue.n_items, candidates if self.two_stage else MAX_K)
        self._item_ids = self.checkpoint.item_ids.tolist()
        self._watch_count = catalogue.watch_count.astype(np.float64)
        # the output table transposed once: the sweep's (B, d) x (d, block) products read it
        # contiguously, a third faster than the transposed view (n_items x d floats more)
        self._columns = self.checkpoint.candidate.output_table().detach().T.contiguous()
        self._batches = 0

    def answer(self, questions: Sequence[Question]) -> list[list[dict[str, Any]]]:
        """The rows of each question, best first (fewer than ``k`` when fewer are unwatched).

        One :func:`~crossent.recsys.serving.recommend.recommend_histories` call for the batch: its
        windows are encoded in groups of similar length (``cut_padding``), once per model,
        and the catalogue is swept once for all of them."""
        if not questions:
            return []
        self._batches += 1
        if self._batches % TRIM_EVERY == 0:
            release_freed_heap()
        # no autograd bookkeeping at all (lighter than no_grad), and no per-shape oneDNN cache
        with torch.inference_mode(), onednn_off():
            return self._answer(questions)

    def _answer(self, questions: Sequence[Question]) -> list[list[dict[str, Any]]]:
        lengths = np.array([len(question.history) for question in questions], dtype=np.int64)
        indptr = np.zeros(len(questions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        watched = (
            np.concatenate([question.history for question in questions])
            if indptr[-1]
            else np.zeros(0, dtype=np.int64)
        )
        found = recommend_histories(
            self.checkpoint,
            indptr,
            watched,
            max(question.k for question in questions),
            candidates=self.candidates,
            cells=self.cells,
            watch_count=self._watch_count,
            cut_padding=True,
            columns=self._columns,
        )
        items, scores, probability = (
            found.items.tolist(),
            found.scores.tolist(),
            found.probability.tolist(),
        )
        p_watch = None if found.p_watch is None else found.p_watch.tolist()
        titles = self.catalogue.titles
        answers = []
        for row, question in enumerate(questions):
            rows = []
            for column in range(question.k):
                item = items[row][column]
                if item < 0:
                    break
                entry: dict[str, Any] = {
                    "rank": column + 1,
                    "item": _plain(self._item_ids[item]),
                    "score": scores[row][column],
                    "probability": probability[row][column],
                }
                if p_watch is not None:
                    entry["p_watch"] = p_watch[row][column]
                if titles is not None:
                    entry["title"] = titles[item]
                rows.append(entry)
            answers.append(rows)
        return answers
