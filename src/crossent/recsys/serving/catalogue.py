"""What a request names, resolved: user ids, item ids or titles, and title search.

Requests speak in the data's own ids (``user=1``, ``"history": [318, "Heat (1995)"]``); the
model speaks in contiguous ids. :class:`Catalogue` translates once per request, in constant
or logarithmic time, whatever the size of the catalogue:

- an id is matched by its printed form (``"318"`` and ``318`` name the same movie), through a
  sorted array for integer ids (no per-item Python object for a million items) or a dict;
- a history entry that is not an item id is a title, matched exactly but case-blind
  (``"heat (1995)"``); when two items share a title the most watched one is meant;
- :meth:`Catalogue.search` finds titles containing a text (case-blind), titles that start with
  it first, then the most watched.

Example::

    catalogue = Catalogue(load_checkpoint("model"))
    items, unknown = catalogue.resolve([318, "heat (1995)", "no such film"])
    # unknown == ["no such film"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crossent.recsys.serving.checkpoint import Checkpoint


class _IdIndex:
    """Printed original id -> contiguous id, for integer or string ids."""

    def __init__(self, ids: np.ndarray) -> None:
        self.integer = ids.dtype.kind in "iu"
        if self.integer:
            self.order = np.argsort(ids, kind="stable")
            self.sorted = ids[self.order]
        else:
            self.by_text: dict[str, int] = {}
            for index, value in enumerate(ids):
                self.by_text.setdefault(str(value), index)

    def find(self, text: str) -> int | None:
        if not self.integer:
            return self.by_text.get(text)
        # only canonical integers ("318", "-2"): "0318", "3e2" or " 318" name no item
        digits = text[1:] if text.startswith("-") else text
        if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
            return None
        number = int(text)
        if str(number) != text:
            return None
        position = int(np.searchsorted(self.sorted, number))
        if position < len(self.sorted) and self.sorted[position] == number:
            return int(self.order[position])
        return None


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python int or str it holds (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


class Catalogue:
    """The checkpoint's ids, titles and watch counts, for answering requests."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.n_items = checkpoint.candidate.config.n_items
        self.watch_count = np.bincount(checkpoint.watch_items, minlength=self.n_items)
        self._users = _IdIndex(checkpoint.user_ids)
        self._items = _IdIndex(checkpoint.item_ids)
        self.user_text = [str(user) for user in checkpoint.user_ids]
        self.user_watches = np.diff(checkpoint.watch_indptr)
        self.titles: list[str | None] | None = (
            None if checkpoint.titles is None else list(checkpoint.titles)
        )
        self._lower: list[str] = []
        self._by_title: dict[str, int] = {}
        if self.titles is not None:
            self._lower = [(title or "").casefold() for title in self.titles]
            # most watched first, so a shared title names the most watched item
            for index in np.argsort(-self.watch_count, kind="stable").tolist():
                if self.titles[index] is not None:
                    self._by_title.setdefault(self._lower[index], index)

    def user(self, text: str) -> int | None:
        """Contiguous id of the user printed as ``text``, or ``None``."""
        return self._users.find(text)

    def watches(self, user: int) -> np.ndarray:
        """``user``'s watches (contiguous item ids), oldest first."""
        indptr = self.checkpoint.watch_indptr
        return self.checkpoint.watch_items[indptr[user] : indptr[user + 1]]

    def item(self, index: int) -> dict[str, Any]:
        """``{"item": original id, "title": ...}`` (the title only when the model has titles)."""
        row: dict[str, Any] = {"item": _plain(self.checkpoint.item_ids[index])}
        if self.titles is not None:
            row["title"] = self.titles[index]
        return row

    def resolve(self, entries: Sequence[int | str]) -> tuple[np.ndarray, list[int | str]]:
        """Contiguous ids of ``entries`` (item ids, else titles) and the entries that match
        neither, in the order given."""
        found: list[int] = []
        unknown: list[int | str] = []
        for entry in entries:
            text = str(entry)
            index = self._items.find(text)
            if index is None and isinstance(entry, str):
                index = self._by_title.get(text.casefold())
            if index is None:
                unknown.append(entry)
            else:
                found.append(index)
        return np.asarray(found, dtype=np.int64), unknown

    def search(self, text: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` items whose title contains ``text`` (case-blind): titles starting
        with it first, then by watch count; an exact item id comes first of all."""
        rows: list[dict[str, Any]] = []
        exact = self._items.find(text.strip())
        if exact is not None:
            rows.append(self.item(exact) | {"watches": int(self.watch_count[exact])})
        needle = text.strip().casefold()
        if not needle or self.titles is None:
            return rows[:limit]
        matches = [index for index, title in enumerate(self._lower) if needle in title]
        matches.sort(key=lambda i: (not self._lower[i].startswith(needle), -self.watch_count[i]))
        for index in matches:
            if len(rows) >= limit:
                break
            if index != exact:
                rows.append(self.item(index) | {"watches": int(self.watch_count[index])})
        return rows

    def users(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` users whose printed id starts with ``prefix``, in the model's order,
        with their number of watches."""
        rows: list[dict[str, Any]] = []
        for index, text in enumerate(self.user_text):
            if text.startswith(prefix):
                rows.append({"user": text, "watches": int(self.user_watches[index])})
                if len(rows) >= limit:
                    break
        return rows
