r"""The self-attentive watch-history encoder of the sequence candidate model (SASRec-style).

A user's last ``L = history`` watches, oldest first and *right-aligned* (padding, the id
``n_items``, fills the front of a short window), become ``L`` states:

.. math::
    x_t = \sqrt{d}\,E_{i_t} + P_t, \qquad
    q = \mathrm{LN}(x), \quad x \leftarrow q + \mathrm{Attn}(q;\ x, x), \qquad
    y = \mathrm{LN}(x), \quad x \leftarrow y + \mathrm{Drop}(\mathrm{FFN}(y))

repeated for each block, then a final LayerNorm: the block of Kang & McAuley's reference
implementation (the query and the residual are the normalised stream; keys and values read it
before normalisation; the feed-forward is ``d`` wide with a ReLU), with dropout on the
embeddings, the attention weights and the feed-forward. Every embedding and weight matrix
starts Xavier-normal, as there: the item table's rows start small (their scale falls with the
catalogue), so Adam's first steps move them by a large fraction of their size; the README's
"Amazon Video: the encoder" has the measurement that chose this form. Attention is causal: the state
at position ``t`` sees watches ``<= t`` only, and never padding (a padded position attends to
itself alone, so no row of the attention is empty). The state at position ``t`` predicts the
watch after ``i_t``; the user vector is the state at the last position.

Training uses every position of every training sequence (:func:`sequence_examples`), each
predicting the watch that follows it; padding targets are ``IGNORE`` (the ``ignore_index`` of
the losses).

References:
    Kang, McAuley. Self-Attentive Sequential Recommendation. ICDM 2018.
    Klenitskiy, Vasilev. Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?
    RecSys 2023 (SASRec trained with the full-catalogue softmax).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossent._validation.choices import EncoderBlock
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.objectives import IGNORE


class _SASRecBlock(nn.Module):
    """One SASRec block: causal self-attention whose query (and residual) is the normalised
    stream, then a normalised point-wise ReLU feed-forward of the same width, with its
    residual.

    The keys and values read the stream before normalisation, as in Kang & McAuley's
    reference implementation; the stream is normalised again before the feed-forward, so no
    block's output grows with depth.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        # no key bias: q · b_k is the same for every key of a query, so the softmax ignores it;
        # its gradient would be pure rounding noise, which Adam scales up to full-size steps
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.project = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def _attend(
        self, query: torch.Tensor, x: torch.Tensor, allowed: torch.Tensor, drop: float
    ) -> torch.Tensor:
        """``query (B, Q, d)`` normalised queries over the keys and values of ``x (B, L, d)``
        -> ``(B, Q, d)``, projected."""
        batch, length, dim = x.shape
        size = dim // self.heads
        q = self.query(query).view(batch, -1, self.heads, size).transpose(1, 2)
        k = self.key(x).view(batch, length, self.heads, size).transpose(1, 2)
        v = self.value(x).view(batch, length, self.heads, size).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        return self.project(attended.transpose(1, 2).reshape(batch, -1, dim))

    def _feed(self, x: torch.Tensor, drop: float) -> torch.Tensor:
        normed = self.feed_forward_norm(x)
        first, relu, second = self.feed_forward
        hidden = F.dropout(relu(first(normed)), drop, self.training)
        return normed + F.dropout(second(hidden), drop, self.training)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d)``, ``allowed (B, 1, L, L)`` bool (query, key) -> ``(B, L, d)``."""
        drop = self.dropout if self.training else 0.0
        normed = self.attention_norm(x)
        return self._feed(normed + self._attend(normed, x, allowed, drop), drop)

    def last(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """The block's output at the last position only (inference: no dropout): ``x (B, L,
        d)``, ``allowed (B, 1, 1, L)`` the last query's keys -> ``(B, 1, d)``. The same
        arithmetic as :meth:`forward`'s last row, without the other positions' queries and
        feed-forward, which nothing after the last block reads."""
        normed = self.attention_norm(x[:, -1:])
        return self._feed(normed + self._attend(normed, x, allowed, 0.0), 0.0)


class _PreNormBlock(nn.Module):
    """One pre-LayerNorm transformer block: causal self-attention, then a 4d-wide GELU
    feed-forward, each added to the stream (``"pre-norm"``: the encoder of crossent's files
    saved before the SASRec block was the default; they load and score as they were trained).
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.query_value = nn.Linear(dim, 2 * dim)
        self.key = nn.Linear(dim, dim, bias=False)  # no key bias, as in _SASRecBlock
        self.project = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        )

    def _attend(
        self, normed: torch.Tensor, queries: torch.Tensor, allowed: torch.Tensor, drop: float
    ) -> torch.Tensor:
        """``queries (B, Q, d)`` over the keys and values of ``normed (B, L, d)`` -> ``(B, Q,
        d)``, projected."""
        batch, length, dim = normed.shape
        size = dim // self.heads
        weight, bias = self.query_value.weight, self.query_value.bias  # rows: queries, values
        q = F.linear(queries, weight[:dim], bias[:dim]).view(batch, -1, self.heads, size)
        v = F.linear(normed, weight[dim:], bias[dim:]).view(batch, length, self.heads, size)
        k = self.key(normed).view(batch, length, self.heads, size)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=allowed,
            dropout_p=drop,
        )
        return self.project(attended.transpose(1, 2).reshape(batch, -1, dim))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d)``, ``allowed (B, 1, L, L)`` bool (query, key) -> ``(B, L, d)``."""
        drop = self.dropout if self.training else 0.0
        normed = self.attention_norm(x)
        x = x + F.dropout(self._attend(normed, normed, allowed, drop), drop, self.training)
        return x + F.dropout(self.feed_forward(self.feed_forward_norm(x)), drop, self.training)

    def last(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`'s last row only (inference), as :meth:`_SASRecBlock.last`."""
        normed = self.attention_norm(x)
        x = x[:, -1:] + self._attend(normed, normed[:, -1:], allowed, 0.0)
        return x + self.feed_forward(self.feed_forward_norm(x))


_BLOCKS: dict[str, type[_SASRecBlock] | type[_PreNormBlock]] = {
    "sasrec": _SASRecBlock, "pre-norm": _PreNormBlock,
}


class SequenceEncoder(nn.Module):
    """``(B, L)`` right-aligned windows of item ids (pad = ``n_items``) -> ``(B, L, dim)`` states.

    Args:
        n_items: catalogue size (the padding id is ``n_items``).
        dim: embedding and state width (a multiple of ``heads``).
        history: ``L``, the window length (number of position embeddings).
        blocks, heads, dropout: transformer depth, attention heads, dropout rate.
        block: "sasrec" (the reference implementation's block, initialisation and √d input
            scale) or "pre-norm" (the encoder crossent's older files were trained with).
    """

    def __init__(
        self, n_items: int, dim: int, history: int, blocks: int, heads: int, dropout: float,
        block: EncoderBlock = "sasrec",
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_in = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # row n = padding
        self.position = nn.Embedding(history, dim)
        self.blocks = nn.ModuleList(_BLOCKS[block](dim, heads, dropout) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(dim)
        self.dropout = dropout
        if block == "sasrec":
            self.scale = math.sqrt(dim)
            for parameter in self.parameters():
                if parameter.dim() >= 2:  # embeddings and weight matrices; norms, biases: theirs
                    nn.init.xavier_normal_(parameter)
        else:  # the previous encoder, as it was trained
            self.scale = 1.0
            nn.init.normal_(self.item_in.weight, std=1.0 / math.sqrt(dim))
            nn.init.normal_(self.position.weight, std=1.0 / math.sqrt(dim))
        with torch.no_grad():
            self.item_in.weight[n_items].zero_()

    def embed(self, window: torch.Tensor) -> torch.Tensor:
        """``(B, L, d)`` the scaled item embeddings plus the position embeddings, right-aligned:
        the last column always gets the last position's embedding."""
        length = window.shape[1]
        positions = torch.arange(length, device=window.device)
        offset = self.position.num_embeddings - length
        return self.item_in(window) * self.scale + self.position(positions + offset)[None]

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """States ``(B, L, d)``; position ``t`` depends on ``window[:, : t + 1]`` only."""
        length = window.shape[1]
        valid = window < self.n_items  # (B, L)
        x = self.embed(window)  # (B, L, d)
        x = F.dropout(x, self.dropout, self.training)
        causal = torch.ones(length, length, dtype=torch.bool, device=window.device).tril()
        diagonal = torch.eye(length, dtype=torch.bool, device=window.device)
        allowed = (causal & valid[:, None, :]) | diagonal  # (B, L, L) query x key
        for block in self.blocks:
            x = block(x, allowed[:, None])
        return self.final_norm(x)

    def last_state(self, window: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` the state at the last position, ``forward(window)[:, -1]``, computed
        for that position alone in the last block (a user vector at inference costs about
        one block less). In training mode (dropout) it is ``forward(window)[:, -1]``."""
        if self.training or not len(self.blocks):
            return self(window)[:, -1]
        length = window.shape[1]
        valid = window < self.n_items
        x = self.embed(window)
        causal = torch.ones(length, length, dtype=torch.bool, device=window.device).tril()
        diagonal = torch.eye(length, dtype=torch.bool, device=window.device)
        allowed = (causal & valid[:, None, :]) | diagonal  # (B, L, L) query x key
        *first, final = self.blocks
        for block in first:
            x = block(x, allowed[:, None])
        assert isinstance(final, (_SASRecBlock, _PreNormBlock))
        return self.final_norm(final.last(x, allowed[:, None, -1:]))[:, 0]

    def user_states(self, window: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` :meth:`last_state` of every row, for any number of rows (inference).

        Rows are sorted by their real length and encoded :data:`INFERENCE_ROWS` at a time,
        each group cut to its longest real history (:func:`leading_padding`: padding is never
        attended to and positions are right-aligned, so the cut changes no state). A short
        history then costs its own length, not the window's, and the activations stay small.

        Example:
            >>> encoder = SequenceEncoder(n_items=5, dim=8, history=4, blocks=1, heads=1,
            ...                           dropout=0.0).eval()
            >>> window = torch.tensor([[5, 5, 1, 2], [0, 1, 2, 3]])
            >>> torch.allclose(encoder.user_states(window), encoder(window)[:, -1], atol=1e-6)
            True
        """
        if self.training:
            return self(window)[:, -1]
        lengths = (window < self.n_items).sum(1)
        weight = self.position.weight
        out = torch.empty(len(window), weight.shape[1], dtype=weight.dtype, device=weight.device)
        for rows in torch.argsort(lengths, stable=True).split(INFERENCE_ROWS):
            group = window[rows]
            out[rows] = self.last_state(group[:, leading_padding(group, self.n_items) :])
        return out


#: Windows encoded together at inference (:meth:`SequenceEncoder.user_states`): a few MiB
#: of activations per call, reused from the heap, where a whole evaluation set in one call
#: (tens of thousands of windows) maps and page-faults hundreds of MiB per layer.
INFERENCE_ROWS = 512


def sequence_examples(train: Interactions, history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training watch after a user's first, as a position of a right-aligned window.

    Each user's time-ordered watches ``s_0 .. s_{m-1}`` are cut, from the end, into windows of
    ``L = history`` inputs ``s_{j} .. s_{j+L-1}`` with targets ``s_{j+1} .. s_{j+L}`` (the watch
    that follows each input), so every watch but the first is a target exactly once, and each
    target's inputs are strictly earlier watches of the same user. The oldest window of a user
    is left-padded with ``n_items`` (inputs) and :data:`IGNORE` (targets).

    Returns:
        ``inputs (n, L)`` int64 and ``targets (n, L)`` int64.
    """
    indptr, items = train.sequences()
    pad = train.n_items
    lengths = np.diff(indptr) - 1  # targets per user
    windows = np.maximum(0, -(-lengths // history))  # ceil, 0 for single-watch users
    user = np.repeat(np.arange(len(lengths)), windows)
    # window w of a user (0 = most recent) ends at its target number lengths - w * L
    rank = np.arange(len(user)) - np.repeat(np.cumsum(windows) - windows, windows)
    end = indptr[user] + lengths[user] - 1 - rank * history  # index of the window's last input
    offsets = np.arange(history) - (history - 1)  # (L,) -L+1 .. 0
    input_index = end[:, None] + offsets[None, :]  # (n, L)
    valid = input_index >= indptr[user][:, None]
    safe = np.clip(input_index, 0, max(len(items) - 1, 0))
    inputs = np.where(valid, items[safe], pad)
    target_index = np.clip(input_index + 1, 0, max(len(items) - 1, 0))
    targets = np.where(valid, items[target_index], IGNORE)
    return (
        torch.from_numpy(inputs.astype(np.int64)),
        torch.from_numpy(targets.astype(np.int64)),
    )


def leading_padding(inputs: torch.Tensor, pad: int) -> int:
    """How many leading columns of a batch of right-aligned windows are padding in every row.

    They change nothing (padding is never attended to, and its targets are ignored), so the
    training step drops them: a batch of short histories then costs its own length, not
    ``history``. At least one column is kept.
    """
    real = (inputs != pad).any(0)  # (L,)
    if not bool(real.any()):
        return inputs.shape[1] - 1
    return int(real.to(torch.int8).argmax())


def example_lengths(inputs: torch.Tensor, pad: int) -> torch.Tensor:
    """``(n,)`` the number of real (non-padding) inputs of each window."""
    return (inputs != pad).sum(1)


def seen_before(window: torch.Tensor, targets: torch.Tensor, pad: int) -> torch.Tensor:
    """``(B, L, L)`` bool: key ``k`` is a watched item to leave out of query ``t``'s softmax.

    True where ``k <= t``, ``window[k]`` is a real item, its first occurrence in the window
    (so a repeat is removed once) and not query ``t``'s own target (a re-watch stays).
    """
    length = window.shape[1]
    earlier_equal = window[:, :, None] == window[:, None, :]  # (B, key, earlier key)
    strictly_before = torch.ones(length, length, dtype=torch.bool).tril(-1)
    first = ~(earlier_equal & strictly_before).any(2)  # (B, L)
    causal = torch.ones(length, length, dtype=torch.bool).tril()  # (query, key)
    keep = causal[None] & (first & (window < pad))[:, None, :]
    return keep & (window[:, None, :] != targets[:, :, None])


#: Batches are formed from this many batches' worth of shuffled examples sorted by length.
BUCKET_BATCHES = 64


def bucketed(
    order: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """``order`` rearranged so that each run of ``batch_size`` holds examples of alike length.

    The shuffled ``order`` is cut into pools of :data:`BUCKET_BATCHES` batches; each pool is
    sorted by length and cut into batches, and the full batches are shuffled (the one short
    batch stays last). Every example still appears once per epoch, in a random batch among
    examples of similar length, so a batch of short sequences is not padded to the longest.
    """
    pool = batch_size * BUCKET_BATCHES
    pieces = [
        part[torch.argsort(lengths[part], stable=True)] for part in order.split(pool)
    ]
    batches = torch.cat(pieces).split(batch_size)
    full = [batch for batch in batches if len(batch) == batch_size]
    short = [batch for batch in batches if len(batch) < batch_size]
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return torch.cat(shuffled + short) if len(order) else order
