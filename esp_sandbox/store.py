"""Where kept messages live: in memory for the pages and lookups, appended to a JSONL file so they outlive a restart.

The file is the record a test can read without HTTP, and what the sandbox loads at start. One JSON object per
line, appended and flushed as each message is accepted; a line cut short by a crash is skipped with a warning
when loading, never fatal. The SMTP server runs on its own thread, so every access takes the lock.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from esp_sandbox.records import StoredMessage

__all__ = ["MessageStore"]

log = logging.getLogger(__name__)

Keep = Callable[[StoredMessage], bool]


class MessageStore:
    """Every kept message, oldest first; ``path=None`` keeps them in memory only (unit tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._messages: list[StoredMessage] = []
        self._by_id: dict[str, StoredMessage] = {}
        self._lock = threading.Lock()

    def load(self) -> int:
        """Read the file (if any) into memory; returns how many messages were loaded."""
        if self.path is None or not self.path.exists():
            return 0
        loaded: list[StoredMessage] = []
        with open(self.path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    loaded.append(StoredMessage.from_json(json.loads(line)))
                except (ValueError, TypeError) as exc:
                    log.warning("skipping line %d of %s, which is not a kept message: %s", number, self.path, exc)
        with self._lock:
            self._messages = loaded
            self._by_id = {message.id: message for message in loaded}
        log.info("loaded %d kept messages from %s", len(loaded), self.path)
        return len(loaded)

    def add(self, messages: Iterable[StoredMessage]) -> None:
        """Keep ``messages``: on disk first (flushed), then in memory, so what a caller was told is durable."""
        batch = list(messages)
        if not batch:
            return
        with self._lock:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as out:
                    for message in batch:
                        out.write(json.dumps(message.to_json(), separators=(",", ":")) + "\n")
                    out.flush()
            self._messages.extend(batch)
            self._by_id.update((message.id, message) for message in batch)

    def get(self, message_id: str) -> StoredMessage | None:
        with self._lock:
            return self._by_id.get(message_id)

    def select(self, keep: Keep | None = None) -> list[StoredMessage]:
        """The kept messages that pass ``keep``, oldest first."""
        with self._lock:
            snapshot = list(self._messages)
        return [message for message in snapshot if keep is None or keep(message)]

    def clear(self) -> int:
        """Forget everything, in memory and on disk; returns how many messages there were."""
        with self._lock:
            count = len(self._messages)
            self._messages = []
            self._by_id = {}
            if self.path is not None and self.path.exists():
                self.path.write_text("", encoding="utf-8")
        return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)
