"""The data collection layer: a Segment-compatible HTTP collector that checks events and puts them on Kafka.

``python -m collector`` runs it (``make up`` does, on 127.0.0.1:8080). :mod:`collector.app` wires the HTTP
routes, :mod:`collector.handlers` holds the request → response logic with the Kafka and Redis clients
injected, :mod:`collector.schema` checks one event, and :mod:`collector.static` has the browser tracker and
the demo shop.
"""

__all__: list[str] = []
