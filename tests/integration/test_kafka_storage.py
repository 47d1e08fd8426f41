"""The sandbox formats Kafka's storage with the real StorageTool, whatever the random cluster id looks like."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_storage_is_formatted_even_when_the_cluster_id_starts_with_a_dash(tmp_path, monkeypatch):
    """A real format run of Kafka's StorageTool with an id that looks like an option."""
    from sandbox import kafka as sandbox_kafka
    from sandbox.settings import load_settings

    jars = load_settings().jars_dir / "kafka"
    assert list(jars.glob("*.jar")), "make test fetches the Kafka jars first (make jars)"
    monkeypatch.setattr(sandbox_kafka, "_new_cluster_id", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    props = tmp_path / "server.properties"
    settings = load_settings()
    props.write_text(sandbox_kafka._server_properties(settings, tmp_path / "data"))
    jvm = ["java", "-cp", f"{jars}/*"]
    sandbox_kafka._format_storage(jvm, props, tmp_path / "data", tmp_path / "format.log")
    assert (tmp_path / "data" / "meta.properties").exists()
