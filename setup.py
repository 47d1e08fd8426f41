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
    packages=find_packages(
        include=["jobs*", "udfs*", "connectors*", "sandbox*", "demo*", "collector*", "esp_sandbox*", "admin*"]
    ),
    include_package_data=True,
    package_data={"collector": ["static/*.js", "static/shop/*"], "esp_sandbox": ["templates/*.html"]},
    install_requires=[
        # Flink 2.2.1 pins its own numpy/pandas/apache-beam; redis<6 comes from apache-beam.
        "apache-flink==2.2.1",
        "kafka-python==3.0.12",
        "lz4==4.4.5",  # kafka-python needs it to read the lz4-compressed topics our sinks write
        "redis==5.3.1",
        # redis-py's C reply parser: half the client CPU of a pipelined profile write (19.4 → 11 us, BENCHMARKS.md)
        "hiredis==3.5.0",
        "jinja2==3.1.6",
        "css-inline==0.23.1",  # inlines templates/email.css into the emails' HTML; see README, "Templates"
        "requests==2.34.2",
        "pydantic==2.14.3",
        "pyyaml==6.0.4",
        # delivery: retry schedules and circuit breakers from maintained libraries (README, "Delivery")
        "tenacity==9.2.1",
        "pybreaker==1.4.1",
        # collector/: see README, "Collector"
        "starlette==1.10.0",
        "uvicorn==0.54.0",
        "uvloop==0.23.0",
        "httptools==0.9.0",
        "aiokafka==0.14.0",
        "cramjam==2.14.0",  # aiokafka's lz4 codec
        "prometheus-client==0.26.0",
        "pydantic-settings==2.16.3",
        # esp_sandbox/: see README, "ESP sandbox"
        "aiosmtpd==1.4.6",
        "cryptography==50.0.2",  # the SMTP server's self-signed STARTTLS certificate
    ],
    extras_require={
        "dev": [
            "pytest==9.2.0",
            "hypothesis==6.170.17",  # property tests of the event-time logic against batch models
            "ruff==0.17.5",
            "mypy==2.4.1",  # `make lint`; settings in pyproject.toml (requests ships its own types)
            "types-PyYAML==6.0.12.20261122",
            "httpx2==2.16.2",  # starlette's TestClient
            "selenium==4.51.0",  # drives Debian's chromium through /usr/bin/chromedriver; never downloads
            "segment-analytics-python==2.4.0",  # the real SDKs, pointed at the collector
            "rudder-sdk-python==2.1.9",
            "matplotlib==3.10.7",  # make bench's chart (bench/suite.py)
            "py-spy==0.4.3",  # profiles of the jobs' Python, thread mode included (BENCHMARKS.md)
        ],
    },
)
