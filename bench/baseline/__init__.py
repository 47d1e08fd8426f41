"""Contender 3 of ``make bench`` (issue 10): the clickstream job's logic without Flink, as a plain-Python team would
run it.

One process per partition of the events topic, each with a kafka-python consumer on that one partition, applying
the same pure steps as the clickstream job (``udfs/``: parse, cart, sessions and scores, identify traits) and
writing the same Redis profiles, pipelined. It reads from the beginning to the end offset the partition had at
start (a bounded run, like the Flink benchmark's), fires every timer left at the end, and exits. Run it as
``python -m bench.baseline --help`` (``run.py``); it prints one JSON line with what it did and what it cost.

What it deliberately does differently from the job, and why that matters when comparing:

- **No login step** (``udfs/identity.py``, ``FollowLogins``): with one process per partition keyed by person, a
  browser's anonymous cart and the user it logs in as can be on different partitions, so moving the cart needs
  a keyed exchange between processes, which is what the job's second keyed stream provides. The benchmark's
  workload has no anonymous carts, so its outputs are the same.
- **Watermarks per partition, from the event's own timestamp, advanced after every record** (Flink's
  bounded-out-of-orderness rule: ``max event time - out_of_orderness - 1``), so timers fire while the stream
  runs, as a live consumer must. The job takes event time from the Kafka record timestamp (the collector and the
  benchmark's producer set it to the event's time) and, in a bounded run, makes no watermark until the end;
  ``--no-watermarks`` does that too. By the job's event-time rules both give the same triggers.
- **At-least-once, not exactly-once**: triggers go out with a plain ``KafkaProducer`` (``acks=all``), no
  transactions and no committed offsets. A consumer that crashed and resumed would send some triggers again
  (delivery deduplicates on ``trigger_id``); making that exactly-once is the transaction and checkpoint work
  Flink does for the job.
- **State in dicts**, nothing checkpointed: a crash loses carts and open sessions (Flink restores them).
"""
