"""The serving path's shortcuts give the same numbers as the plain computation.

- ``SequenceEncoder.last_state`` (the last block run for the last position alone) is
  ``forward(window)[:, -1]``;
- the catalogue sweep's chunk prefilter (``_block_top`` given the running K-th value) keeps
  the same top-K values as a ``topk`` over every block;
- the length groups of ``cut_padding`` cover every row once, each group as wide as its
  longest history;
- the engine's model work runs with oneDNN off (no per-shape primitive cache in a server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from crossent.recsys.models.sequence import SequenceEncoder
from crossent.recsys.serving import recommend


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_last_state_is_the_last_position_of_forward(blocks: int) -> None:
    torch.manual_seed(blocks)
    n_items, history = 50, 12
    encoder = SequenceEncoder(n_items, 16, history, blocks, 2, 0.3).eval()
    for width in (1, 5, history):
        window = torch.randint(0, n_items, (9, width))
        real = torch.randint(0, width + 1, (9,))
        window[torch.arange(width)[None] < (width - real)[:, None]] = n_items  # right-aligned
        with torch.inference_mode():
            expected = encoder(window)[:, -1]
            got = encoder.last_state(window)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _sweep(logits: torch.Tensor, keep: int, block: int, prefilter: bool) -> torch.Tensor:
    best = torch.full((logits.shape[0], 0), -torch.inf)
    for start in range(0, logits.shape[1], block):
        part = logits[:, start : start + block]
        kth = best[:, -1] if prefilter and best.shape[1] == keep else None
        values, _ = recommend._block_top(part, keep, kth)
        merged = torch.cat([best, values], 1)
        best = torch.sort(merged, dim=1, descending=True, stable=True).values[:, :keep]
    return best


def test_the_chunk_prefilter_keeps_the_same_top_values() -> None:
    generator = torch.Generator().manual_seed(0)
    for trial in range(60):
        rows = int(torch.randint(1, 9, (1,), generator=generator))
        n = int(torch.randint(1, 12000, (1,), generator=generator))
        keep = min(n, int(torch.randint(1, 300, (1,), generator=generator)))
        block = recommend._CHUNK * int(torch.randint(1, 12, (1,), generator=generator))
        logits = torch.randn(rows, n, generator=generator)
        if trial % 3 == 0:  # watched items, and a row with none left
            logits[torch.rand(rows, n, generator=generator) < 0.9] = -torch.inf
            logits[0] = -torch.inf
        expected = _sweep(logits, keep, block, prefilter=False)
        assert torch.equal(_sweep(logits, keep, block, prefilter=True), expected)


def test_length_groups_cover_every_row_once_at_its_longest_history() -> None:
    lengths = np.array([0, 3, 200, 17, 16, 150, 64, 65, 1, 500, 31, 33, 128, 129])
    groups = recommend._groups(lengths, 200, cut_padding=True)
    rows = np.sort(np.concatenate([group for group, _ in groups]))
    assert np.array_equal(rows, np.arange(len(lengths)))
    for group, width in groups:
        assert width == max(1, min(200, int(lengths[group].max())))
    assert recommend._groups(lengths, 200, cut_padding=False)[0][1] == 200


def test_the_mmap_threshold_can_be_pinned_on_glibc() -> None:
    import platform

    from crossent.recsys.serving.engine import MMAP_THRESHOLD, fix_mmap_threshold

    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"mallopt is glibc's; this C library is {platform.libc_ver()[0] or 'unknown'}")
    assert MMAP_THRESHOLD == 256 * 1024
    assert fix_mmap_threshold() is True


def test_the_engine_answers_with_onednn_off_and_restores_it(
    two_stage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oneDNN caches a compiled primitive per tensor shape, and a server's batches come in
    every shape: the engine's model work runs without it, and the flag is back afterwards."""
    from crossent.recsys.serving import engine as engine_module
    from crossent.recsys.serving.catalogue import Catalogue
    from crossent.recsys.serving.checkpoint import load_checkpoint

    seen: list[bool] = []
    real = engine_module.recommend_histories

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.backends.mkldnn.enabled)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "recommend_histories", spy)
    engine = engine_module.Engine(Catalogue(load_checkpoint(two_stage)))
    assert torch.backends.mkldnn.enabled
    [rows] = engine.answer([engine_module.Question(history=np.array([0, 3]), k=4)])
    assert seen == [False] and len(rows) == 4
    assert torch.backends.mkldnn.enabled


def test_onednn_stays_off_while_any_thread_is_inside_and_comes_back_after_the_last() -> None:
    """A server's workers overlap: the first to leave must not turn oneDNN back on under the
    other (a flag saved and restored per block would)."""
    import threading

    from crossent.recsys.serving.engine import onednn_off

    first_in, first_out, second_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with onednn_off():
            first_in.set()
            second_done.wait(10)  # still inside while the second enters and leaves
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with onednn_off():
            pass
        seen.append(torch.backends.mkldnn.enabled)  # the first is still inside
        second_done.set()

    assert torch.backends.mkldnn.enabled
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == [False]
    assert first_out.is_set() and torch.backends.mkldnn.enabled
