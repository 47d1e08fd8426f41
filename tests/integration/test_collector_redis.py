"""The collector's Redis store against the real Redis: claim states, marks, releases and identity links.

Each call is one script call for the whole request, however many message ids or links it carries; these
tests check what ends up in Redis (values and TTLs), not how many calls were made. Every test has its own key
prefix, and removes its keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from collector.clients.base import ClaimState
from collector.clients.redis import RedisStore

pytestmark = pytest.mark.integration

PENDING_TTL_MS = 60_000
WINDOW_MS = 3_600_000
IDENTITY_TTL_MS = 86_400_000

NEW, DONE, PENDING = ClaimState.NEW, ClaimState.DONE, ClaimState.PENDING


@pytest.fixture
def prefix(redis_client, run_id) -> Iterator[str]:
    prefix = f"test-collector-redis:{run_id}:"
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}*", count=1000):
        redis_client.delete(key)


def _with_store(sandbox, prefix: str, work: Callable[[RedisStore], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = RedisStore(sandbox.redis_url, prefix=prefix)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_a_claim_is_new_once_pending_for_other_requests_and_done_once_marked(sandbox, redis_client, prefix):
    async def work(store: RedisStore) -> list[list[ClaimState]]:
        first = await store.claim(["a", "b"], "token-1", PENDING_TTL_MS)
        other = await store.claim(["a", "b"], "token-2", PENDING_TTL_MS)
        await store.commit(["a"], WINDOW_MS)
        after_mark = await store.claim(["a", "b", "c"], "token-3", PENDING_TTL_MS)
        return [first, other, after_mark]

    first, other, after_mark = _with_store(sandbox, prefix, work)

    assert first == [NEW, NEW]
    assert other == [PENDING, PENDING]
    assert after_mark == [DONE, PENDING, NEW]
    assert redis_client.get(f"{prefix}dedup:a") == "done"
    assert 0 < redis_client.pttl(f"{prefix}dedup:a") <= WINDOW_MS
    assert WINDOW_MS - 60_000 < redis_client.pttl(f"{prefix}dedup:a")
    assert redis_client.get(f"{prefix}dedup:b") == "token-1"
    assert 0 < redis_client.pttl(f"{prefix}dedup:b") <= PENDING_TTL_MS
    assert redis_client.get(f"{prefix}dedup:c") == "token-3"


def test_a_release_deletes_only_the_claims_still_held_by_that_request(sandbox, redis_client, prefix):
    async def work(store: RedisStore) -> list[ClaimState]:
        await store.claim(["mine", "marked"], "token-1", PENDING_TTL_MS)
        await store.claim(["theirs"], "token-2", PENDING_TTL_MS)
        await store.commit(["marked"], WINDOW_MS)
        await store.release(["mine", "marked", "theirs"], "token-1")
        return await store.claim(["mine", "marked", "theirs"], "token-3", PENDING_TTL_MS)

    states = _with_store(sandbox, prefix, work)

    assert states == [NEW, DONE, PENDING]
    assert redis_client.get(f"{prefix}dedup:theirs") == "token-2"


def test_a_large_mixed_batch_answers_every_id_in_order(sandbox, redis_client, prefix):
    ids = [f"m{i}-ü-😀" for i in range(3_000)]
    done, pending = ids[0::3], ids[1::3]

    async def work(store: RedisStore) -> list[ClaimState]:
        await store.claim(done + pending, "earlier", PENDING_TTL_MS)
        await store.commit(done, WINDOW_MS)
        return await store.claim(ids, "now", PENDING_TTL_MS)

    states = _with_store(sandbox, prefix, work)

    expected = [DONE if i % 3 == 0 else PENDING if i % 3 == 1 else NEW for i in range(len(ids))]
    assert states == expected
    assert redis_client.get(f"{prefix}dedup:{ids[2]}") == "now"
    assert redis_client.get(f"{prefix}dedup:{ids[0]}") == "done"


def test_nothing_to_claim_mark_or_release_makes_no_call(sandbox, prefix):
    async def work(store: RedisStore) -> list[ClaimState]:
        await store.commit([], WINDOW_MS)
        await store.release([], "token")
        await store.link([], IDENTITY_TTL_MS)
        return await store.claim([], "token", PENDING_TTL_MS)

    assert _with_store(sandbox, prefix, work) == []


def test_links_are_kept_with_their_ttl_and_the_last_link_of_an_id_wins(sandbox, redis_client, prefix):
    async def work(store: RedisStore) -> dict[str, str]:
        await store.link([("anon-1", "ann"), ("anon-2", "bob"), ("anon-1", "ann-2")], IDENTITY_TTL_MS)
        return dict(await store.resolve(["anon-1", "anon-2", "anon-3", "anon-1"]))

    resolved = _with_store(sandbox, prefix, work)

    assert resolved == {"anon-1": "ann-2", "anon-2": "bob"}
    assert IDENTITY_TTL_MS - 60_000 < redis_client.pttl(f"{prefix}identity:anon-2") <= IDENTITY_TTL_MS
