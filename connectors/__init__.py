"""I/O with the outside systems: Kafka (sources and sinks for Flink jobs) and Redis (profiles)."""
