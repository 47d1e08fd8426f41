"""``python -m admin suppress-import FILE``, ``python -m admin suppress ADDRESS…``, ``python -m admin ab-report``.

Both write to the suppression list in Redis (``REDIS_URL``, ledger prefix ``DELIVERY_LEDGER_PREFIX``,
default ``delivery:``) that the delivery job reads before every send.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from admin.suppressions import read_addresses
from connectors.delivery_ledger import DeliveryLedger
from connectors.errors import ConnectorError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imported = commands.add_parser("suppress-import", help="add every address of a CSV or text file")
    imported.add_argument("file", type=Path)
    imported.add_argument("--reason", default="imported")
    ab_report = commands.add_parser("ab-report", help="conversion by holdout and A/B group, as an HTML page")
    ab_report.add_argument("--out", type=Path, default=Path("ab-report.html"))
    ab_report.add_argument("--attribution-days", type=int, default=7)
    single = commands.add_parser("suppress", help="add the given addresses")
    single.add_argument("addresses", nargs="+")
    single.add_argument("--reason", default="manual")
    args = parser.parse_args(argv)

    if args.command == "ab-report":
        return _ab_report(args.out, args.attribution_days)
    if args.command == "suppress-import":
        try:
            text = args.file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        report = read_addresses(text)
        source = f"import:{args.file.name}"
    else:
        report = read_addresses("\n".join(args.addresses))
        source = "cli"
    for line, content in report.rejected:
        print(f"skipped line {line}: not an email address: {content!r}", file=sys.stderr)

    ledger = DeliveryLedger(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), os.environ.get("DELIVERY_LEDGER_PREFIX", "delivery:")
    )
    try:
        ledger.setup()
        added = ledger.suppress(report.addresses, args.reason, source)
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(f"{added} new of {len(report.addresses)} addresses suppressed; {len(report.rejected)} lines skipped")
    return 0 if not report.rejected else 3


def _ab_report(out: Path, attribution_days: int) -> int:
    from admin.ab_report import compute, render_html
    from admin.topics import read_topic

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    deliveries = read_topic(bootstrap, os.environ.get("DELIVERIES_TOPIC", "email.deliveries"))
    orders = [
        (str(e.get("personId") or e.get("userId") or e.get("anonymousId")), _epoch_ms(e.get("timestamp")))
        for e in read_topic(bootstrap, os.environ.get("EVENTS_TOPIC", "clickstream.events"))
        if e.get("event") == "Order Completed"
    ]
    results = compute(deliveries, [(p, t) for p, t in orders if t is not None], attribution_days * 86_400_000)
    out.write_text(render_html(results))
    for r in results:
        print(f"{r.group:10} people {r.people:6}  emailed {r.emailed:6}  converted {r.converted:6}  {r.rate:.1%}")
    print(f"report: {out.resolve()}")
    return 0


def _epoch_ms(timestamp: object) -> int | None:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
