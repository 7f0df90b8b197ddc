"""`broker.connect`: the backend is chosen by the URL's scheme, built-in or plugged in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import broker
from broker.backend import Backend, BackendRequest
from broker.backends.memory import connect_memory
from broker.connectors import get_connector, register_backend, schemes
from tests.redis_servers import shared_redis_ok, shared_redis_url


async def roundtrip(client: broker.Client) -> list[int]:
    """Publish three messages and return what the one subscriber handled."""
    seen: list[int] = []
    async with client:
        sub = client.subscriber()

        @sub.handler("t")
        async def handle(n: int) -> None:
            seen.append(n)

        await sub.start()
        for n in range(3):
            await client.publish("t", n)
        await client.join()
    return seen


async def test_memory_url_builds_an_in_process_client() -> None:
    client = broker.connect("memory://", app="shop")
    assert (client.config.mode, client.config.app_name) == ("memory", "shop")
    assert sorted(await roundtrip(client)) == [0, 1, 2]


@pytest.mark.parametrize(("scheme", "mode"), [("redis", "redis"), ("hybrid+redis", "hybrid")])
async def test_redis_urls_pick_redis_and_hybrid(scheme: str, mode: str) -> None:
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    rest = url.split("://", 1)[1]
    config = broker.Config(prefix=prefix, heartbeat_ttl=3.0, lease=3.0)
    client = broker.Client.from_url(f"{scheme}://{rest}", config=config)
    assert client.config.mode == mode
    assert client.config.redis_url == url
    try:
        assert sorted(await roundtrip(client)) == [0, 1, 2]
    finally:
        from broker.backends.redis import connect

        redis = connect(url)
        async for key in redis.scan_iter(match=f"{prefix}:*"):
            await redis.delete(key)
        await redis.aclose()


@pytest.mark.parametrize(
    ("url", "mode", "redis_url", "cluster"),
    [
        ("memory://", "memory", "redis://127.0.0.1:6379/0", False),
        ("rediss://u:p@h:1/2", "redis", "rediss://u:p@h:1/2", False),
        ("unix:///run/redis.sock", "redis", "unix:///run/redis.sock", False),
        ("redis+cluster://h:7000", "redis", "redis://h:7000", True),
        ("hybrid+rediss://h:1/3", "hybrid", "rediss://h:1/3", False),
        ("hybrid+redis+cluster://h:7000", "hybrid", "redis://h:7000", True),
        ("HYBRID+REDIS://h:1/0", "hybrid", "redis://h:1/0", False),
    ],
)
def test_a_url_decides_mode_redis_url_and_cluster(
    url: str, mode: str, redis_url: str, cluster: bool
) -> None:
    config = broker.Config(url=url)
    assert (config.mode, config.redis_url, config.cluster) == (mode, redis_url, cluster)
    assert config.backend_url == url
    # and the URL composed from those fields names the same backend
    composed = broker.Config(mode=config.mode, redis_url=redis_url, cluster=cluster)
    assert broker.Config(url=composed.backend_url) == composed.replace(url=composed.backend_url)


def test_a_url_contradicted_by_another_setting_is_refused() -> None:
    with pytest.raises(broker.ConfigError, match=r"mode=.*from url"):
        broker.Config(url="redis://h:1/0", mode="hybrid")
    with pytest.raises(broker.ConfigError, match="redis_url=") as caught:
        broker.Config(url="redis://:secret@h:1/0", redis_url="redis://other:1/0")
    assert "secret" not in str(caught.value)
    with pytest.raises(broker.ConfigError, match="url"):
        broker.Config(url="no-scheme")


def test_replace_with_a_new_url_decides_again() -> None:
    config = broker.Config(url="hybrid+redis://h:1/0").replace(url="memory://")
    assert (config.mode, config.redis_url) == ("memory", "redis://127.0.0.1:6379/0")
    assert config.replace(max_jobs=3).mode == "memory"
    assert broker.Config(url="redis://h:1/0").replace(max_jobs=3).mode == "redis"


def test_an_unknown_scheme_names_the_known_ones_and_hides_the_rest() -> None:
    with pytest.raises(broker.InvalidArgument) as caught:
        broker.connect("nosuch://user:secret@host/0")
    message = str(caught.value)
    assert "secret" not in message
    assert all(scheme in message for scheme in ("memory", "redis", "hybrid+redis"))
    with pytest.raises(broker.InvalidArgument, match="scheme"):
        register_backend("9lives", connect_memory)


async def test_a_backend_registered_in_code_serves_its_scheme() -> None:
    built: list[BackendRequest] = []

    def connector(request: BackendRequest) -> Backend:
        built.append(request)
        return connect_memory(request)

    register_backend("incode", connector)
    assert "incode" in schemes()
    client = broker.connect("incode://anything", app="a", flavour="x")
    assert sorted(await roundtrip(client)) == [0, 1, 2]
    assert built[0].url == "incode://anything"
    assert built[0].option("flavour") == "x"
    assert client.config.mode == "memory"  # a plug-in's URL leaves the built-in fields alone


def test_broker_url_from_the_environment() -> None:
    config = broker.Config.from_env({"BROKER_URL": "hybrid+redis://h:1/2", "BROKER_MODE": "hybrid"})
    assert (config.mode, config.redis_url) == ("hybrid", "redis://h:1/2")
    for extra in (
        {"BROKER_MODE": "redis"},
        {"REDIS_URL": "redis://x:1/0"},
        {"QUEUE_TYPE": "memory"},
    ):
        with pytest.raises(broker.ConfigError, match="BROKER_URL") as caught:
            broker.Config.from_env({"BROKER_URL": "hybrid+redis://:pw@h:1/2", **extra})
        assert "pw" not in str(caught.value)
    with pytest.raises(broker.ConfigError, match="BROKER_URL"):
        broker.Config.from_env({"BROKER_URL": "localhost:6379"})
    assert broker.client_from_env({"BROKER_URL": "memory://"}).config.mode == "memory"


def _run(code: str, path: Path | None = None) -> str:
    env = {"PYTHONPATH": f"{path}:{Path.cwd()}" if path else str(Path.cwd())}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_broker_and_a_memory_client_load_no_redis() -> None:
    out = _run(
        """
        import asyncio, sys
        import broker
        loaded = [m for m in sys.modules if m == "redis" or m.startswith("redis.")]
        client = broker.connect("memory://")
        asyncio.run(client.aclose())
        loaded += [m for m in sys.modules if m == "redis" or m.startswith("redis.")]
        print(sorted(set(loaded)))
        """
    )
    assert out.strip() == "[]"


def test_a_missing_driver_names_the_extra() -> None:
    out = _run(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "redis" or name.startswith("redis."):
                    raise ImportError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        import broker
        url = "redis://127.0.0.1:6379/0"
        calls = [
            lambda: broker.connect(url),
            lambda: broker.new_redis_client("s", url),
            lambda: broker.new_hybrid_client("s", url),
        ]
        for call in calls:
            try:
                call()
            except broker.MissingDependency as exc:
                print(exc.extra, exc.package, "pip install 'broker[redis]'" in str(exc))
        """
    )
    assert out.split() == ["redis", "redis", "True"] * 3


def test_a_plugin_adds_a_scheme_through_the_entry_point_group(tmp_path: Path) -> None:
    (tmp_path / "memtest_backend.py").write_text(
        textwrap.dedent(
            """
            from broker.backends.memory import connect_memory

            CALLS = []

            def connect(request):
                CALLS.append(request.url)
                return connect_memory(request)
            """
        )
    )
    info = tmp_path / "memtest_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memtest-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[broker.backends]\nmemtest = memtest_backend:connect\n")
    out = _run(
        """
        import asyncio
        import broker, memtest_backend
        from broker.connectors import schemes
        from tests.test_connect import roundtrip

        assert "memtest" in schemes()
        seen = asyncio.run(roundtrip(broker.connect("memtest://x", app="p")))
        print(sorted(seen), memtest_backend.CALLS)
        """,
        tmp_path,
    )
    assert out.strip() == "[0, 1, 2] ['memtest://x']"


def test_built_in_schemes_resolve_to_connectors() -> None:
    for scheme in ("memory", "redis", "rediss", "redis+cluster", "hybrid+redis", "hybrid+unix"):
        assert callable(get_connector(f"{scheme}://h"))
