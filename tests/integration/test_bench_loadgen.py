"""The benchmark's load generator speaks HTTP/1.1 itself (bench/loadgen.py): against a real
aiohttp server it sends every item once, with its DIGEST and body intact, reuses connections,
reopens one the server closed, and counts what was not answered 200."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench import loadgen
from testkit.services import free_port


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, bytes]], set[int]]]:
    seen: list[tuple[str, bytes]] = []
    peers: set[int] = set()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.headers["Digest"], body))
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername")[1])
        if body.startswith(b"refuse"):
            response = web.json_response({"status": "error"}, status=401)
            response.force_close()  # as the receiver does on 413 and 408
            return response
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/webhooks/conekta", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/webhooks/conekta", seen, peers
    finally:
        await runner.cleanup()


def _items(n: int, refused: int = -1) -> list[loadgen.Signed]:
    return [
        loadgen.Signed(f"evt_{i}", (b"refuse" if i == refused else b'{"n": %d}' % i), f"sig{i}")
        for i in range(n)
    ]


async def test_closed_loop_sends_every_item_on_kept_connections(
    server: tuple[str, list[tuple[str, bytes]], set[int]],
) -> None:
    url, seen, peers = server
    items = _items(200)
    result = await loadgen.closed_loop(url, items, 4)
    assert len(result.latencies) == 200 and result.failures == 0
    assert sorted(seen) == sorted((item.digest, item.body) for item in items)
    assert len(peers) <= 4  # keep-alive: one connection per client


async def test_a_closed_connection_is_reopened_and_a_refusal_counted(
    server: tuple[str, list[tuple[str, bytes]], set[int]],
) -> None:
    url, seen, _ = server
    result = await loadgen.closed_loop(url, _items(50, refused=10), 1)
    assert len(seen) == 50
    assert (len(result.latencies), result.failures) == (49, 1)


async def test_open_loop_counts_an_unreachable_server_as_failures() -> None:
    result = await loadgen.open_loop(f"http://127.0.0.1:{free_port()}/", _items(5), 1000.0)
    assert (len(result.latencies), result.failures) == (0, 5)
