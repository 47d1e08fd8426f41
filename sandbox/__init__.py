"""The local sandbox: a real Kafka broker, Redis and the pipeline's services on loopback.

``python -m sandbox up|down|status`` is what ``make up``/``make down``/``make status`` call;
tests use :func:`sandbox.services.start_all` to get the same services once per session.
"""
