"""``python -m sandbox up|down|status``: the commands behind ``make up``, ``make down`` and ``make status``."""

from __future__ import annotations

import argparse
import logging
import sys

from sandbox.collector import collector_url
from sandbox.jobs import job_processes
from sandbox.process import ServiceError
from sandbox.services import SERVICES, start_all, status, stop_all
from sandbox.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "jobs-start", "jobs-stop"])
    parser.add_argument("services", nargs="*", choices=[[], *SERVICES], help="default: all")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_settings()
    names = args.services or None
    try:
        if args.command == "up":
            result = start_all(settings, names)
            for name in result.started:
                print(f"started {name}")
            for name in result.already_running:
                print(f"{name} was already running")
            for topic in result.topics_created:
                print(f"created topic {topic}")
            print(f"Kafka: {settings.kafka_bootstrap}   Redis: {settings.redis_url}   logs: {settings.logs_dir}")
            print(f"Collector: {collector_url(settings)}/v1/   demo shop: {collector_url(settings)}/shop/")
        elif args.command == "down":
            stopped = [job.name for job in job_processes(settings) if not names and job.stop()]
            stopped += stop_all(settings, names)
            print("stopped " + ", ".join(stopped) if stopped else "nothing that the sandbox started was running")
        elif args.command == "jobs-start":
            for job in job_processes(settings):
                started = job.start()
                print(
                    f"{job.name}: {'started' if started else 'already running'} (pid {job.pid()}), log {job.log_file}"
                )
        elif args.command == "jobs-stop":
            for job in job_processes(settings):
                print(f"{job.name}: {'stopped' if job.stop() else 'was not running'}")
        else:
            for name, state in status(settings).items():
                print(f"{name:8} {state}")
            for job in job_processes(settings):
                pid = job.pid()
                print(f"{job.name:8} {f'running (pid {pid}), log {job.log_file}' if pid else 'not running'}")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
