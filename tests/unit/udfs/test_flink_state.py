"""The TTL of the jobs' keyed state is built without a JVM, as a thread-mode operator on a TaskManager must."""

from __future__ import annotations

import pyflink.common.time
import pyflink.java_gateway
import pytest

from udfs.flink.state import ttl_config


def test_ttl_config_needs_no_py4j_gateway_and_keeps_flinks_default_cleanup(monkeypatch):
    def no_gateway():
        raise AssertionError("built through a py4j gateway")

    monkeypatch.setattr(pyflink.java_gateway, "get_gateway", no_gateway)
    monkeypatch.setattr(pyflink.common.time, "get_gateway", no_gateway)
    config = ttl_config(30 * 86_400_000)
    cleanup = config.get_cleanup_strategies()
    assert config.get_ttl().to_milliseconds() == 30 * 86_400_000
    assert cleanup.get_incremental_cleanup_strategy().get_cleanup_size() == 5
    assert cleanup.get_rocksdb_compact_filter_cleanup_strategy().get_query_time_after_num_entries() == 1000


def test_the_default_builder_does_need_one(monkeypatch):
    """Why ttl_config spells the cleanup out: if this starts passing, PyFlink fixed it and the workaround can go."""
    from pyflink.common.time import Time
    from pyflink.datastream.state import StateTtlConfig

    def no_gateway():
        raise AssertionError("built through a py4j gateway")

    monkeypatch.setattr(pyflink.common.time, "get_gateway", no_gateway)
    default = StateTtlConfig.new_builder(Time.milliseconds(1000)).build()
    with pytest.raises(AssertionError, match="gateway"):
        default.get_cleanup_strategies().get_rocksdb_compact_filter_cleanup_strategy()
