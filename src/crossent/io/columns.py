"""The one column guesser: find the column playing a role from a list of usual names.

Used by ``crossent score`` (target, prob, logit, weight), the recommender loaders (user, item,
timestamp, rating, watch time) and ranking files. The rule: names are compared ignoring case;
exactly one match is the guess; none is no guess; several is an error listing them, since
picking one silently could score the wrong column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crossent.errors import CrossentError

#: Usual names of the columns of interaction logs and ranking files, by role.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userId", "uid"),
    "item": ("item", "item_id", "itemId", "movieId", "video", "video_id", "iid"),
    "timestamp": ("timestamp", "time", "ts", "datetime"),
    "rating": ("rating", "score"),
    "watch_time": ("watch_time", "watchTime", "duration", "play_time"),
    "rank": ("rank", "position", "pos"),
    "score": ("score", "prediction", "pred", "prob", "logit"),
}


def pick_column(
    role: str,
    candidates: Iterable[str],
    available: Sequence[str],
    *,
    how_to_choose: str | None = None,
) -> str | None:
    """The one column of ``available`` named like one of ``candidates`` (ignoring case).

    Returns None when no column fits.

    Raises:
        CrossentError: several columns fit; the message lists them and ends with
            ``how_to_choose`` (default ``pass --ROLE``).
    """
    by_lower: dict[str, str] = {}
    for column in available:
        by_lower.setdefault(column.lower(), column)
    found = list(dict.fromkeys(by_lower[n.lower()] for n in candidates if n.lower() in by_lower))
    if len(found) > 1:
        advice = how_to_choose or f"pass --{role}"
        raise CrossentError(f"cannot guess the {role} column: {', '.join(found)} all fit; {advice}")
    return found[0] if found else None
