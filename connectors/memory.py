"""In-memory twins of connectors, for unit tests only (integration tests use the real services)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.esp.message import EmailMessage, SendResult

__all__ = ["ScriptedProvider"]


@dataclass
class ScriptedProvider:
    """A provider that answers from a script: each item is an exception to raise or ``"ok"``; then ``"ok"``."""

    name: str
    script: list[BaseException | str] = field(default_factory=list)
    sent: list[EmailMessage] = field(default_factory=list)
    calls: int = 0
    idempotent_resend: bool = False

    @classmethod
    def answering(cls, name: str, answers: Iterable[BaseException | str]) -> ScriptedProvider:
        return cls(name=name, script=list(answers))

    def send(self, message: EmailMessage) -> SendResult:
        self.calls += 1
        answer = self.script.pop(0) if self.script else "ok"
        if isinstance(answer, BaseException):
            raise answer
        self.sent.append(message)
        return SendResult(self.name, f"{self.name}-{len(self.sent)}")

    def find_sent(self, trigger_id: str) -> SendResult | None:
        matches = [m for m in self.sent if m.trigger_id == trigger_id]
        return SendResult(self.name, f"{self.name}-found") if matches else None

    def close(self) -> None:
        return None
