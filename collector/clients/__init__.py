"""The collector's outside systems behind small interfaces: Kafka (:mod:`.kafka`), Redis (:mod:`.redis`),
and their in-memory twins for unit tests (:mod:`.memory`). :mod:`.base` defines what the handlers need.
"""

__all__: list[str] = []
