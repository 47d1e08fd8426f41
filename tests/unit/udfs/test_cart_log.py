"""The op log on its own: insertion in event-time order, resets as the new base, compaction, serialization."""

from __future__ import annotations

import json
from typing import Any

import udfs.cart_log
from udfs.cart_items import CartItem
from udfs.cart_log import DEFAULT_CURRENCY, CartLog, CartOp, OpKind, op_units

SHOE = CartItem("shoe", "Shoe", 80.0, 1)
HAT = CartItem("hat", "Hat", 20.0, 1, image_url="https://img/hat", url="https://shop/hat")


def add(t: int, item: CartItem = SHOE, **metadata: Any) -> CartOp:
    return CartOp(OpKind.ADD, t, f"add-{t}-{item.product_id}", (item,), **metadata)


def remove(t: int, product_id: str = "shoe", quantity: int | None = None) -> CartOp:
    return CartOp(OpKind.REMOVE, t, f"remove-{t}-{product_id}", product_id=product_id, quantity=quantity)


def snapshot(t: int, *items: CartItem, **metadata: Any) -> CartOp:
    return CartOp(OpKind.SNAPSHOT, t, f"snapshot-{t}", items, **metadata)


def order(t: int) -> CartOp:
    return CartOp(OpKind.ORDER, t, f"order-{t}")


def build(*ops: CartOp) -> CartLog:
    log = CartLog()
    for op in ops:
        log = log.apply(op)
    return log


def test_ops_are_kept_in_event_time_order_and_folded_in_that_order():
    log = build(remove(3), add(2, SHOE), add(1, SHOE), add(4, HAT))

    assert [op.event_time_ms for op in log.ops] == [1, 2, 3, 4]
    assert log.items == {"hat": HAT}  # two adds, then the removal of the whole line


def test_a_reset_replaces_the_cart_but_stays_in_the_log_so_the_cart_can_be_read_before_it():
    log = build(add(1, SHOE), add(5, HAT), snapshot(3, CartItem("belt", "Belt", 30.0, 2)))

    assert [op.event_time_ms for op in log.ops] == [1, 3, 5]
    assert list(log.items) == ["belt", "hat"]
    assert list(log.cart_until(2).items) == ["shoe"]
    assert list(log.cart_until(4).items) == ["belt"]
    assert build(add(1), order(3), add(5, HAT)).items == {"hat": HAT}


def test_an_op_at_or_below_the_base_is_dropped():
    log = build(order(5), add(6, HAT)).folded_until(5)

    assert log.base_key == (5, "", 5, "order-5")
    assert log.apply(add(4)) is log
    assert log.apply(snapshot(4, SHOE)) is log


def test_a_transfer_closes_the_cart_and_drops_every_op_after_it():
    log = build(add(1, SHOE), add(7, HAT), CartOp(OpKind.TRANSFER, 5, "moved"))

    assert [op.event_time_ms for op in log.ops] == [1, 5]
    assert log.items == {} and log.latest.closed
    assert log.apply(add(9, HAT)) is log
    assert list(log.cart_until(4).items) == ["shoe"]


def test_a_moved_group_is_folded_on_its_own_and_added_at_the_login():
    moved = [
        CartOp(OpKind.ADD, 1, "m1", (HAT,), merged_at_ms=10, source="browser"),
        CartOp(OpKind.REMOVE, 2, "m2", product_id="hat", merged_at_ms=10, source="browser"),
        CartOp(OpKind.ADD, 3, "m3", (SHOE,), merged_at_ms=10, source="browser", cart_id="cb", currency="EUR"),
    ]
    log = build(add(4, SHOE, cart_id="own"), *moved, remove(12, "shoe", quantity=1))

    assert [unit[0].message_id for unit in op_units(log.ops)] == ["add-4-shoe", "m1", "remove-12-shoe"]
    assert log.cart_until(9).items == {"shoe": SHOE}
    assert log.cart_until(10).items["shoe"].quantity == 2  # own shoe plus the browser's; its hat was removed
    assert (log.cart_until(10).cart_id, log.cart_until(10).currency) == ("cb", "EUR")
    assert log.items["shoe"].quantity == 1


def test_registers_take_the_newest_writer_in_event_time():
    log = build(add(3, SHOE, cart_id="c3", currency="EUR"), add(1, HAT, cart_id="c1", currency="GBP"), order(2))

    assert (log.cart_id, log.currency) == ("c3", "EUR")
    assert build(add(1, cart_id="c1"), order(2)).cart_id is None
    assert build(snapshot(2, SHOE, cart_id="c2"), add(1, cart_id="c1")).cart_id == "c2"
    assert CartLog().currency == DEFAULT_CURRENCY


def test_folding_until_a_time_keeps_the_same_cart():
    log = build(*(add(t, CartItem(f"p{t}", "", 1.0, 1)) for t in range(10)))

    below = log.folded_until(3)

    assert [op.event_time_ms for op in below.ops] == [4, 5, 6, 7, 8, 9]
    assert below.base_key == (3, "", 3, "add-3-p3")
    assert list(below.items.items()) == list(log.items.items())
    assert log.folded_until(-1) is log


def test_log_round_trips_through_json_and_restores_the_fold():
    log = build(
        snapshot(1, SHOE, cart_id="c1"),
        add(2, HAT, currency="EUR"),
        remove(3, "shoe", quantity=1),
        remove(4, "ghost"),
    )

    restored = CartLog.from_dict(json.loads(json.dumps(log.to_dict())))

    assert restored == log
    assert restored.items == log.items == {"hat": HAT}
    assert [CartOp.from_dict(op.to_dict()) for op in (snapshot(1, SHOE), order(2))] == [snapshot(1, SHOE), order(2)]
    assert CartLog.from_dict({}) == CartLog()


def test_all_covers_every_public_name():
    public = {
        name
        for name, value in vars(udfs.cart_log).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == udfs.cart_log.__name__
    }
    assert set(udfs.cart_log.__all__) >= public
    assert all(hasattr(udfs.cart_log, name) for name in udfs.cart_log.__all__)
