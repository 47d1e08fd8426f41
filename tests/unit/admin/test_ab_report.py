from admin.ab_report import compute, render_html

HOUR = 3_600_000


def _delivery(person, status, variant="A", holdout=False, at=0, reason=None):
    return {
        "person_id": person,
        "status": status,
        "variant": variant,
        "holdout": holdout,
        "decided_at_ms": at,
        "reason": reason,
    }


def test_groups_conversions_and_uplift():
    deliveries = [
        _delivery("h1", "suppressed", holdout=True, reason="holdout"),
        _delivery("h2", "suppressed", holdout=True, reason="holdout"),
        _delivery("a1", "sent", "A"),
        _delivery("a2", "sent", "A"),
        _delivery("b1", "sent", "B"),
        _delivery("b1", "sent", "B", at=HOUR),
        _delivery("x", "suppressed", reason="unsubscribed"),
    ]
    orders = [("h1", HOUR), ("a1", HOUR), ("a2", 30 * 24 * HOUR), ("b1", -HOUR), ("x", HOUR)]
    results = {r.group: r for r in compute(deliveries, orders, attribution_ms=7 * 24 * HOUR)}
    assert set(results) == {"holdout", "A", "B"}  # the unsubscribed person is not in the experiment
    assert (results["holdout"].people, results["holdout"].converted, results["holdout"].emailed) == (2, 1, 0)
    assert (results["A"].people, results["A"].converted) == (2, 1)  # a2 bought outside the window
    assert (results["B"].people, results["B"].converted) == (1, 0)  # b1 bought before the email
    page = render_html(list(results.values()))
    assert "<svg" in page and "holdout" in page and "+0.0%" in page
