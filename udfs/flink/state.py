"""Keyed state that expires: every stateful step keeps JSON per key and drops it after a quiet spell."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueState, ValueStateDescriptor

__all__ = ["expiring_json_state", "ttl_config"]


def expiring_json_state(runtime_context: RuntimeContext, name: str, ttl_ms: int) -> ValueState:
    """A string value per key, gone ``ttl_ms`` after its last write (never read once expired), so people who
    never come back do not grow state forever."""
    descriptor = ValueStateDescriptor(name, Types.STRING())
    descriptor.enable_time_to_live(ttl_config(ttl_ms))
    return runtime_context.get_state(descriptor)


def ttl_config(ttl_ms: int) -> StateTtlConfig:
    """Expire ``ttl_ms`` after the last write; never hand out an expired value."""
    return (
        StateTtlConfig.new_builder(Time.milliseconds(ttl_ms))
        .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
        .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
        # Flink's default background cleanup, spelled out. Left implicit, PyFlink 2.2.1 builds the default RocksDB
        # strategy's 30-day compaction period as a Java Duration through a py4j gateway, which a thread-mode
        # operator on a TaskManager does not have (FileNotFoundError launching one). That period never reaches
        # Java (only the entry count does), so a plain Time stands in for it.
        .disable_cleanup_in_background()
        .cleanup_incrementally(5, False)
        .cleanup_in_rocksdb_compact_filter(1000, Time.days(30))
        .build()
    )
