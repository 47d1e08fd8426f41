"""Keyed state that expires: every stateful step keeps JSON per key and drops it after a quiet spell."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueState, ValueStateDescriptor

__all__ = ["expiring_json_state"]


def expiring_json_state(runtime_context: RuntimeContext, name: str, ttl_ms: int) -> ValueState:
    """A string value per key, gone ``ttl_ms`` after its last write (never read once expired), so people who
    never come back do not grow state forever."""
    descriptor = ValueStateDescriptor(name, Types.STRING())
    descriptor.enable_time_to_live(
        StateTtlConfig.new_builder(Time.milliseconds(ttl_ms))
        .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
        .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
        .build()
    )
    return runtime_context.get_state(descriptor)
