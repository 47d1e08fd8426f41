"""Checks that turn a missing tool into one sentence that says how to fix it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sandbox.process import ServiceError

__all__ = ["require_java", "require_jars", "require_redis_server"]

MIN_JAVA = 17


def require_java() -> str:
    """Return the java binary, or explain that Java 17+ is needed (Kafka 4 and Flink 2 both run on it)."""
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            "Java was not found on PATH; install a JDK 17 or newer "
            "(Debian: 'apt-get install -y openjdk-17-jre-headless') and run the command again."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)  # noqa: S603
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ServiceError(
            f"{java} is Java {major or 'of unknown version'}, but Kafka 4 and Flink 2 need Java {MIN_JAVA} or newer; "
            f"install openjdk-17 and put it first on PATH."
        )
    return java


def require_jars(folder: Path, what: str) -> list[Path]:
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise ServiceError(f"No {what} jars in {folder}; run 'make jars' (it fetches them from Maven Central).")
    return jars


def require_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(
            "redis-server was not found on PATH; run 'make deps' (it runs 'apt-get install -y redis-server')."
        )
    return binary
