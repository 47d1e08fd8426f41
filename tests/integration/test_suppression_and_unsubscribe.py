"""The suppression list's two feeds on the real Redis: the import command and the unsubscribe link."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from connectors.delivery_ledger import DeliveryLedger
from sandbox.collector import collector_port
from sandbox.settings import PROJECT_ROOT, SANDBOX_CREDENTIALS
from udfs.unsubscribe import sign, unsubscribe_url

pytestmark = pytest.mark.integration


def _ledger(sandbox, prefix: str = "delivery:") -> DeliveryLedger:
    ledger = DeliveryLedger(sandbox.redis_url, prefix)
    ledger.setup()
    return ledger


def test_import_command_fills_the_list_and_names_bad_lines(sandbox, run_id, tmp_path):
    source = tmp_path / "unsubscribes.csv"
    source.write_text(f"email\n{run_id}-a@example.com\nnonsense\n{run_id}-B@Example.com\n")
    env = {**os.environ, **sandbox.env(), "DELIVERY_LEDGER_PREFIX": f"imp-{run_id}:"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "admin", "suppress-import", str(source)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "skipped line 3: not an email address: 'nonsense'" in result.stderr
    assert "2 new of 2 addresses suppressed; 1 lines skipped" in result.stdout
    ledger = _ledger(sandbox, f"imp-{run_id}:")
    assert ledger.is_suppressed(f"{run_id}-b@example.com") and not ledger.is_suppressed("other@example.com")
    ledger.close()


def test_the_unsubscribe_link_confirms_then_suppresses(sandbox, run_id):
    email = f"{run_id}@example.com"
    token = sign(f"person-{run_id}", email, SANDBOX_CREDENTIALS["UNSUBSCRIBE_SECRET"], issued_at=int(time.time()))
    url = unsubscribe_url(f"http://127.0.0.1:{collector_port()}/unsubscribe", token)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and email in page.text
    ledger = _ledger(sandbox)
    assert not ledger.is_suppressed(email), "opening the link alone must not unsubscribe (mail scanners open links)"
    done = requests.post(url, data="List-Unsubscribe=One-Click", timeout=10)
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert ledger.is_suppressed(email)
    tampered = requests.post(url.replace(token[-6:], "AAAAAA"), timeout=10)
    assert tampered.status_code == 400
    ledger.close()
