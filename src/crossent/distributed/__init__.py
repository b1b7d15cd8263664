"""Past one machine: the catalogue-sharded softmax (:mod:`.sharded`) and the collectives the
sharded recommender uses. Without a process group every function runs as a world of one."""

from crossent.distributed.sharded import (
    copy_to_shards,
    gather_rows,
    gather_shards,
    shard_range,
    sharded_cross_entropy,
    sum_from_shards,
)

__all__ = [
    "copy_to_shards",
    "gather_rows",
    "gather_shards",
    "shard_range",
    "sharded_cross_entropy",
    "sum_from_shards",
]
