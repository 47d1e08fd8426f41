"""The ESP sandbox: SendGrid, Mailchimp Transactional, a signed webhook and SMTP, on loopback.

Email providers cannot be reached from the project's machines, so delivery is tested against this stand-in. It
implements each provider's request contract as documented (authentication, required fields, size limits, the
real success and error bodies), keeps every message it accepts (in memory and in a JSONL file), can be told to
fail (``/_sandbox/faults``), and shows its outbox as a web page. ``python -m esp_sandbox`` runs it; ``make up``
starts it on 127.0.0.1:8025 (HTTP) and 127.0.0.1:2525 (SMTP).
"""
