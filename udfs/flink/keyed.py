"""Keying on the Java side: streams whose records already carry their key need no Python key selector.

PyFlink's ``key_by`` runs a Python step per record that puts the key in front of it (``Row(key, value)``), then
keys on that field in Java. When our own Python function has just made the record, it can put the key in front
itself, and two such streams can be unioned and keyed without a Python step in between: a key selector after a
union is an operator with two inputs, which Flink cannot chain to either, so it would cost every record one
more hop into Python.
"""

from __future__ import annotations

from pyflink.common.typeinfo import RowTypeInfo, TypeInformation
from pyflink.datastream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway

__all__ = ["keyed_by_first_field"]


def keyed_by_first_field(stream: DataStream, key_type: TypeInformation, value_type: RowTypeInfo) -> KeyedStream:
    """Key ``stream``, whose records are ``Row(key, value)``, by ``key``; keyed functions then see ``value``.

    :param key_type: the type of ``key`` (as given to ``key_by``).
    :param value_type: the type of ``value``, which keyed functions downstream receive.
    """
    gateway = get_gateway()
    key_row = RowTypeInfo([key_type]).get_java_type_info()
    j_keyed = stream._j_data_stream.keyBy(gateway.jvm.KeyByKeySelector(), key_row)
    return KeyedStream(j_keyed, value_type, stream)
