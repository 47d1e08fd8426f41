"""What fault tests count: triggers, emails per trigger in the ESP outbox, and final outcomes per trigger.

A trigger's *final* outcome is its one record on ``email.deliveries`` with a status other than ``deferred`` and a
reason other than ``duplicate`` (README, "Delivery"; ``DeliveryRecord.is_final``): ``deferred`` records are
progress reports and may repeat; ``duplicate`` notes a trigger that came in again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINAL_STATUSES", "Tally", "tally"]

FINAL_STATUSES = frozenset({"sent", "suppressed", "failed", "uncertain"})


@dataclass(frozen=True)
class Tally:
    """Counts over one run; ``problems()`` lists every trigger that broke "one email, one final outcome"."""

    triggers: int
    emails: Counter[str] = field(repr=False)
    finals: dict[str, list[str]] = field(repr=False)

    def problems(self, trigger_ids: Iterable[str], expect_email: bool = True) -> list[str]:
        found = []
        for trigger_id in trigger_ids:
            emails, finals = self.emails.get(trigger_id, 0), self.finals.get(trigger_id, [])
            if expect_email and emails != 1:
                found.append(f"{trigger_id}: {emails} emails")
            if len(finals) != 1:
                found.append(f"{trigger_id}: final outcomes {finals}")
            elif expect_email and finals[0] != "sent":
                found.append(f"{trigger_id}: emailed but recorded {finals[0]}")
        return found

    def summary(self) -> str:
        per_trigger = Counter(self.emails.values())
        outcomes = Counter(status for statuses in self.finals.values() for status in statuses)
        return (
            f"{self.triggers} triggers; emails per trigger {dict(sorted(per_trigger.items()))}; "
            f"final outcomes {dict(sorted(outcomes.items()))}"
        )


def tally(
    triggers: Iterable[str], deliveries: Iterable[Mapping[str, Any]], outbox: Iterable[Mapping[str, Any]]
) -> Tally:
    """``deliveries``: records read from ``email.deliveries``; ``outbox``: the ESP sandbox's kept messages."""
    wanted = set(triggers)
    emails: Counter[str] = Counter()
    for message in outbox:
        trigger_id = _trigger_of(message)
        if trigger_id in wanted:
            emails[trigger_id] += 1
    finals: dict[str, list[str]] = {}
    for record in deliveries:
        final = record["status"] in FINAL_STATUSES and record.get("reason") != "duplicate"
        if record["trigger_id"] in wanted and final:
            finals.setdefault(record["trigger_id"], []).append(record["status"])
    return Tally(triggers=len(wanted), emails=emails, finals=finals)


def _trigger_of(message: Mapping[str, Any]) -> str | None:
    """The trigger id the delivery job attached (SendGrid ``custom_args``, Mandrill ``metadata``)."""
    for key in ("trigger_id", "metadata", "custom_args"):
        value = message.get(key)
        if isinstance(value, str) and key == "trigger_id":
            return value
        if isinstance(value, Mapping) and isinstance(value.get("trigger_id"), str):
            return str(value["trigger_id"])
    return None
