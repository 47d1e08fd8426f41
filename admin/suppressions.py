"""Import addresses into the suppression list the delivery job checks (consent withdrawn elsewhere,
bounces from the provider, a former ESP's unsubscribes).

Reads CSV (an ``email`` column, or the first column) or one address per line; every line that is not an
address is reported with its line number and skipped, never guessed at.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ImportReport", "read_addresses"]

_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


@dataclass
class ImportReport:
    addresses: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, the text)


def read_addresses(text: str) -> ImportReport:
    """Valid, lower-cased addresses and the lines that were not addresses."""
    report = ImportReport()
    rows: Iterable[list[str]] = csv.reader(io.StringIO(text))
    column = 0
    for number, row in enumerate(rows, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and any(cell.strip().lower() == "email" for cell in row):
            column = [cell.strip().lower() for cell in row].index("email")
            continue
        value = row[column].strip() if column < len(row) else ""
        if _EMAIL.match(value):
            report.addresses.append(value.lower())
        else:
            report.rejected.append((number, ",".join(row)[:200]))
    return report
