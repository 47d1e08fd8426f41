"""An anonymous cart follows the person after login.

A shopper fills a cart before logging in: those events carry only the browser's ``anonymousId``, so the
collector keys them by it and the cart job keeps that cart under it. The ``identify`` at login (or an
``alias``) links the browser to the ``userId``, and every later event is keyed by the user; but the cart
already in state is under the other key, where no Flink operator keyed by person can reach it.

So the cart job runs one step before the cart, keyed by *device* (``anonymousId``, else the person): it keeps
the cart events a device made under its own id, and when the device is linked it replays them, in event-time
order, relabelled to the user (their own timestamps and message ids, so the cart under the user folds them in
as if they had been made there, and a duplicate is still caught), and sends the device's own cart a
``Cart Transferred`` marker that clears it, so no reminder goes out for the anonymous copy. Events that
arrive for a linked device under its own id (sent before the collector learned the link) are relabelled
straight away.

What is kept is bounded: only a device's own cart events, only while it is unlinked, from its newest order on
(a purchase empties the cart, so nothing before it matters), at most ``max_events`` (the oldest go first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from udfs.cart import CART_EVENTS, CART_TRANSFERRED, ORDER_COMPLETED
from udfs.events import ClickEvent

__all__ = ["DeviceState", "Routed", "resolved_already", "route"]


@dataclass(frozen=True, slots=True)
class Routed:
    """An event on its way to the cart, under the person whose cart it belongs to."""

    person_id: str
    event_time_ms: int
    payload: str


@dataclass(slots=True)
class DeviceState:
    """One device: the person it was linked to, or the cart events it made under its own id meanwhile.

    :param pending: ``[event_time_ms, message_id, is_reset, payload]`` per cart event, in arrival order.
    :param dropped: how many pending events were dropped at ``max_events`` (oldest first).
    """

    linked_to: str | None = None
    pending: list[list[Any]] = field(default_factory=list)
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"linked_to": self.linked_to, "pending": self.pending, "dropped": self.dropped}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceState:
        return cls(data.get("linked_to"), [list(p) for p in data.get("pending", ())], data.get("dropped", 0))


def resolved_already(event: ClickEvent) -> bool:
    """The event is keyed by a known person (the collector resolved its anonymousId, or it has only a userId,
    as server-side calls do) and links nothing: it goes on as it is, without reading the device's state."""
    return event.links_to is None and event.person_id != event.anonymous_id


def route(
    state: DeviceState | None, event: ClickEvent, payload: str, max_events: int
) -> tuple[DeviceState | None, list[Routed]]:
    """Where one event goes, and the device's state after it; ``state`` is never mutated."""
    device = event.device_id
    user = event.links_to
    as_is = Routed(event.person_id, event.event_time_ms, payload)
    if user is not None:
        moved = [Routed(user, t, _relabelled(raw, user)) for t, _, _, raw in sorted(state.pending)] if state else []
        marker = [_transfer_marker(device, user, event)] if moved else []
        return DeviceState(linked_to=user), [*moved, *marker, as_is]
    if resolved_already(event):
        return state, [as_is]
    if state is not None and state.linked_to is not None:
        return state, [Routed(state.linked_to, event.event_time_ms, _relabelled(payload, state.linked_to))]
    if event.type != "track" or event.name not in CART_EVENTS:
        return state, [as_is]
    return _remembered(state, event, payload, max_events), [as_is]


def _remembered(state: DeviceState | None, event: ClickEvent, payload: str, max_events: int) -> DeviceState:
    """The state with one more pending cart event; a reset makes every older one irrelevant."""
    is_reset = event.name == ORDER_COMPLETED
    pending = [*(state.pending if state else ()), [event.event_time_ms, event.message_id, is_reset, payload]]
    newest_reset = max((p[:2] for p in pending if p[2]), default=None)
    if newest_reset is not None:
        pending = [p for p in pending if p[:2] >= newest_reset]
    dropped = state.dropped if state else 0
    if len(pending) > max_events:
        pending.sort()
        dropped += len(pending) - max_events
        pending = pending[len(pending) - max_events :]
    return DeviceState(linked_to=None, pending=pending, dropped=dropped)


def _relabelled(payload: str, person_id: str) -> str:
    doc = json.loads(payload)
    doc["personId"] = person_id
    return json.dumps(doc, separators=(",", ":"))


def _transfer_marker(device: str, user: str, link: ClickEvent) -> Routed:
    """The device's cart is now the user's: clear it, at the link's time (so it is never late where the link
    is not), with an id derived from the link's so a replay sends the same marker."""
    moment = datetime.fromtimestamp(link.event_time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    doc = {
        "type": "track",
        "event": CART_TRANSFERRED,
        "messageId": f"cart-transfer:{link.message_id}",
        "personId": device,
        "anonymousId": device,
        "timestamp": moment.replace("+00:00", "Z"),
        "properties": {"to_person_id": user},
        "context": {"library": {"name": "cartpulse-cart-job", "version": "1"}},
    }
    return Routed(device, link.event_time_ms, json.dumps(doc, separators=(",", ":")))
