"""Tests for the throwaway redis-server harness in tests/redis_servers.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from tests.redis_servers import (
    MAX_CLUSTER_PORT,
    RedisCluster,
    RedisServer,
    command,
    free_port,
    ping_port,
    require_redis_server,
    shared_redis_ok,
    shared_redis_url,
)


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    require_redis_server()
    with RedisCluster() as started:
        yield started


def test_free_port_cluster_leaves_room_for_bus_port() -> None:
    port = free_port(cluster=True)
    assert 0 < port < MAX_CLUSTER_PORT
    assert free_port(exclude=[port]) != port


def test_server_set_get_then_stop() -> None:
    require_redis_server()
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.pid > 0
        with redis.Redis.from_url(server.url) as client:
            assert client.set("k", "v")
            assert client.get("k") == b"v"
        server.stop()
        assert not ping_port(server.port)
        data_dir = server.dir
    assert not data_dir.exists()


def test_appendonly_survives_sigkill_and_restart() -> None:
    require_redis_server()
    with RedisServer(appendonly=True) as server:
        port, first_pid = server.port, server.pid
        with redis.Redis.from_url(server.url) as client:
            pipe = client.pipeline(transaction=False)
            for i in range(1000):
                pipe.set(f"key:{i}", i)
            pipe.execute()
        server.kill()
        assert not ping_port(port)
        server.restart()
        assert server.port == port
        assert server.pid != first_pid
        with redis.Redis.from_url(server.url) as client:
            assert client.dbsize() == 1000
            values = client.mget([f"key:{i}" for i in range(1000)])
            assert values == [str(i).encode() for i in range(1000)]


def test_cluster_roundtrip_slots_and_stop() -> None:
    require_redis_server()
    with RedisCluster() as cluster:
        ports = cluster.ports
        assert len(set(ports)) == 3
        assert cluster.url == f"redis://127.0.0.1:{ports[0]}/0"
        assert cluster.startup_nodes == [("127.0.0.1", p) for p in ports]
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=ports[0])
        try:
            keys = {"{a}x": b"1", "{b}y": b"2", "{c}z": b"3"}
            for key, value in keys.items():
                assert client.set(key, value)
            for key, value in keys.items():
                assert client.get(key) == value
        finally:
            client.close()
        for port in ports:
            info = command(port, "CLUSTER", "INFO")
            assert isinstance(info, bytes)
            assert b"cluster_state:ok" in info
        owners = cluster.slots()
        assert set(owners) == set(ports)
        assert all(owners[port] for port in ports)
        covered = sorted(r for ranges in owners.values() for r in ranges)
        assert covered[0][0] == 0
        assert covered[-1][1] == 16383
        assert all(prev[1] + 1 == nxt[0] for prev, nxt in itertools.pairwise(covered))
        cluster.stop()
        assert cluster.ports == ports
        assert not any(ping_port(port) for port in ports)


async def test_async_cluster_client(cluster: RedisCluster) -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        assert await client.set("{async}key", "value")
        assert await client.get("{async}key") == b"value"
    finally:
        await client.aclose()


def test_require_redis_server_in_ci_without_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="required in CI"):
        require_redis_server()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_redis_server()


def test_shared_redis_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    assert shared_redis_url() == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    assert shared_redis_url() == "redis://127.0.0.1:1/0"
    assert not shared_redis_ok(f"redis://127.0.0.1:{free_port()}/0")


def test_start_failure_reports_log_tail_and_cleans_up() -> None:
    require_redis_server()
    server = RedisServer(extra_args=["--no-such-option", "x"])
    with pytest.raises(RuntimeError, match="no-such-option"), server:
        pass
    assert not server.dir.exists()
