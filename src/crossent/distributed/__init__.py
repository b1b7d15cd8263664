"""Past one machine: the catalogue-sharded softmax (:mod:`.sharded`) and the collectives the
sharded recommender uses (:mod:`.collectives`). Without a process group every function runs
as a world of one."""

from crossent.distributed.collectives import copy_to_shards, gather_rows, sum_from_shards
from crossent.distributed.sharded import gather_shards, shard_range, sharded_cross_entropy

__all__ = [
    "copy_to_shards",
    "gather_rows",
    "gather_shards",
    "shard_range",
    "sharded_cross_entropy",
    "sum_from_shards",
]
