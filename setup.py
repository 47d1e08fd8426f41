"""Install with ``pip install -e .[dev]`` (``make venv`` does it)."""

from setuptools import find_packages, setup

setup(
    name="cartpulse",
    version="0.1.0",
    description="Real-time email personalization on Apache Flink's Python API: clickstream to cart reminders.",
    long_description=open("README.md", encoding="utf-8").read(),  # noqa: SIM115
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["jobs*", "udfs*", "connectors*", "sandbox*", "demo*"]),
    include_package_data=True,
    install_requires=[
        # Flink 2.2.1 pins its own numpy/pandas/apache-beam; redis<6 comes from apache-beam.
        "apache-flink==2.2.1",
        "kafka-python==3.0.12",
        "lz4==4.4.5",  # kafka-python needs it to read the lz4-compressed topics our sinks write
        "redis==5.3.1",
        "jinja2==3.1.6",
        "requests==2.34.2",
        "pydantic==2.14.3",
        "pyyaml==6.0.4",
    ],
    extras_require={
        "dev": [
            "pytest==9.2.0",
            "ruff==0.17.5",
        ],
    },
)
