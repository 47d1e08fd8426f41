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
(a purchase empties the cart, so nothing before it matters, once the watermark has passed it and so any link
still to come is later), at most ``max_events`` (the oldest go first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from udfs.cart import CART_EVENTS, CART_TRANSFERRED, NO_WATERMARK, ORDER_COMPLETED
from udfs.events import MERGED_FIELD, ClickEvent

__all__ = ["DeviceState", "Routed", "needs_login_step", "resolved_already", "route"]


@dataclass(frozen=True, slots=True)
class Routed:
    """An event on its way to the cart, under the person whose cart it belongs to."""

    person_id: str
    event_time_ms: int
    payload: str


@dataclass(slots=True)
class DeviceState:
    """One device: the person it was linked to and when, or the cart events it made under its own id meanwhile.

    :param linked_at_ms: event time of the link (the first identify/alias that arrived); the device's cart
        events before it join the person's cart at this time, those after it are the person's own.
    :param link_message_id: the link's message id, from which the transfer marker's id is derived.
    :param pending: ``[event_time_ms, message_id, is_reset, payload]`` per cart event, in arrival order.
    :param dropped: how many pending events were dropped at ``max_events`` (oldest first).
    """

    linked_to: str | None = None
    linked_at_ms: int | None = None
    link_message_id: str = ""
    pending: list[list[Any]] = field(default_factory=list)
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "linked_to": self.linked_to,
            "linked_at_ms": self.linked_at_ms,
            "link_message_id": self.link_message_id,
            "pending": self.pending,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceState:
        return cls(
            data.get("linked_to"),
            data.get("linked_at_ms"),
            data.get("link_message_id", ""),
            [list(p) for p in data.get("pending", ())],
            data.get("dropped", 0),
        )


def resolved_already(event: ClickEvent) -> bool:
    """The event is keyed by a known person (the collector resolved its anonymousId, or it has only a userId,
    as server-side calls do) and links nothing: it goes on as it is, without reading the device's state."""
    return event.links_to is None and event.person_id != event.anonymous_id


def needs_login_step(event: ClickEvent) -> bool:
    """The event can change what :func:`route` does for the cart: a link, or a cart event that is not yet known to
    be a person's. Every other event reaches the cart (where non-cart events change nothing) as it is, so a job
    may send only these through the step keyed by device and the rest straight on."""
    return event.links_to is not None or (not resolved_already(event) and _is_cart_event(event))


def route(
    state: DeviceState | None, event: ClickEvent, payload: str, max_events: int, watermark_ms: int = NO_WATERMARK
) -> tuple[DeviceState | None, list[Routed]]:
    """Where one event goes, and the device's state after it; ``state`` is never mutated.

    Decided by event time, so any arrival order gives the carts the same ops: the device's cart events before
    the link stay in the device's cart (which a transfer at the link closes) and join the person's cart at the
    link; those after it are the person's. An event that arrives after the link but is older than it goes both
    ways, with the transfer marker again (the cart drops a duplicate marker).

    :param watermark_ms: the step's current watermark: a link still to come is after it, so only a reset at or
        before it makes the events before that reset irrelevant to the cart the link moves.
    """
    device = event.device_id
    user = event.links_to
    as_is = Routed(event.person_id, event.event_time_ms, payload)
    if user is not None and (state is None or state.linked_to is None):
        at_ms = event.event_time_ms
        pending = sorted(state.pending) if state else []
        moved = [_to_person(user, at_ms, device, t, raw) for t, _, _, raw in pending]
        marker = [_transfer_marker(device, user, at_ms, event.message_id)] if pending else []
        return DeviceState(user, at_ms, event.message_id), [*moved, *marker, as_is]
    if user is not None or resolved_already(event):
        return state, [as_is]
    if state is not None and state.linked_to is not None:
        person, link_ms = state.linked_to, state.linked_at_ms
        if link_ms is not None and event.event_time_ms < link_ms and _is_cart_event(event):
            end = _transfer_marker(device, person, link_ms, state.link_message_id)
            return state, [as_is, _to_person(person, link_ms, device, event.event_time_ms, payload), end]
        return state, [Routed(person, event.event_time_ms, _relabelled(payload, person))]
    if not _is_cart_event(event):
        return state, [as_is]
    return _remembered(state, event, payload, max_events, watermark_ms), [as_is]


def _is_cart_event(event: ClickEvent) -> bool:
    return event.type == "track" and event.name in CART_EVENTS


def _to_person(person: str, link_ms: int, device: str, event_time_ms: int, payload: str) -> Routed:
    """A device's cart event for the person's cart: one before the link joins it at the link, in a group."""
    if event_time_ms >= link_ms:
        return Routed(person, event_time_ms, _relabelled(payload, person))
    return Routed(person, link_ms, _relabelled(payload, person, {"at_ms": link_ms, "from": device}))


def _remembered(
    state: DeviceState | None, event: ClickEvent, payload: str, max_events: int, watermark_ms: int
) -> DeviceState:
    """The state with one more pending cart event. A reset behind the watermark makes every older one
    irrelevant: the link that moves the cart is later still. (A newer reset may be at or after that link, and
    the cart the link moves is made of the events before the link, the reset's predecessors included.)"""
    is_reset = event.name == ORDER_COMPLETED
    pending = [*(state.pending if state else ()), [event.event_time_ms, event.message_id, is_reset, payload]]
    newest_reset = max((p[:2] for p in pending if p[2] and p[0] <= watermark_ms), default=None)
    if newest_reset is not None:
        pending = [p for p in pending if p[:2] >= newest_reset]
    dropped = state.dropped if state else 0
    if len(pending) > max_events:
        pending.sort()
        dropped += len(pending) - max_events
        pending = pending[len(pending) - max_events :]
    return DeviceState(pending=pending, dropped=dropped)


def _relabelled(payload: str, person_id: str, merged: dict[str, Any] | None = None) -> str:
    doc = json.loads(payload)
    doc["personId"] = person_id
    if merged is not None:
        doc[MERGED_FIELD] = merged
    return json.dumps(doc, separators=(",", ":"))


def _transfer_marker(device: str, user: str, at_ms: int, link_message_id: str) -> Routed:
    """The device's cart is now the user's: close it, at the link's time (so it is never late where the link
    is not), with an id derived from the link's so a replay (or a second marker) is a duplicate."""
    moment = datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    doc = {
        "type": "track",
        "event": CART_TRANSFERRED,
        "messageId": f"cart-transfer:{link_message_id}",
        "personId": device,
        "anonymousId": device,
        "timestamp": moment.replace("+00:00", "Z"),
        "properties": {"to_person_id": user},
        "context": {"library": {"name": "cartpulse-cart-job", "version": "1"}},
    }
    return Routed(device, at_ms, json.dumps(doc, separators=(",", ":")))
