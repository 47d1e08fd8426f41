"""Thin Flink wrappers around the pure logic: the only place under ``udfs/`` that imports pyflink."""
