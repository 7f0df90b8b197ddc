"""Bad input: refused at the boundary with typed errors, or dead-lettered without stopping flow."""

from __future__ import annotations

import msgspec
import pytest

import broker
from broker.message import Envelope, new_id
from tests.conftest import FAST, MakeClient


class Order(msgspec.Struct):
    id: int


@pytest.mark.parametrize(
    "topic",
    ["", "a b", "orders{1}", "or*ders", "a?", "x[1]", "new\nline", "t" * 201, "é"],
)
async def test_invalid_topics_are_refused(make_client: MakeClient, topic: str) -> None:
    client = make_client()
    with pytest.raises(broker.InvalidTopic) as info:
        await client.publish(topic, 1)
    assert info.value.topic == topic
    sub = client.subscriber()
    with pytest.raises(broker.InvalidTopic):
        sub.add_handler(topic, lambda _: None)
    assert await client.queue.groups(topic) == []


@pytest.mark.parametrize("topic", ["orders.created", "a", "x:y/z-1_2", "t" * 200])
async def test_valid_topics_are_accepted(make_client: MakeClient, topic: str) -> None:
    client = make_client()
    assert await client.publish(topic, 1)


async def test_oversized_payload_is_refused_before_queueing(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(max_payload_bytes=1024))
    with pytest.raises(broker.PayloadTooLarge) as info:
        await client.publish("big", b"x" * 2000)
    assert (info.value.limit, info.value.size > 1024) == (1024, True)
    with pytest.raises(broker.PayloadTooLarge):
        await client.publish_many("big", [b"ok", b"x" * 2000])
    assert await client.queue.groups("big") == [], "nothing was stored, not even the first"


async def test_unencodable_payload_is_a_typed_error(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(broker.SerializationError):
        await client.publish("t", object())


async def test_undecodable_and_invalid_payloads_are_dead_lettered_on_first_delivery(
    make_client: MakeClient,
) -> None:
    client = make_client("shop")
    got: list[Order] = []
    sub = client.subscriber()

    @sub.handler("orders")
    async def typed(order: Order) -> None:
        got.append(order)

    await sub.start()
    garbage = Envelope(id=new_id(), topic="orders", payload=b"\xc1\xff", created_at=0.0)
    await client.queue.push("shop", sub.id, [garbage])
    wrong = await client.publish("orders", {"id": "not-an-int"})
    good = await client.publish("orders", {"id": 3})
    await client.join()
    assert got == [Order(id=3)]
    dead = {d.envelope.id: d for d in await client.dead_letters()}
    assert set(dead) == {garbage.id, wrong}
    assert all(d.envelope.attempt == 1 for d in dead.values())
    assert "undecodable payload" in dead[wrong].error
    assert "Expected `int`" in dead[wrong].error
    assert good not in dead


async def test_handler_registration_errors(make_client: MakeClient) -> None:
    client = make_client()
    sub = client.subscriber()
    sub.add_handler("t", lambda _: None)
    with pytest.raises(broker.HandlerError):
        sub.add_handler("t", lambda _: None)

    def two_args(a: int, b: int) -> None: ...

    with pytest.raises(broker.HandlerError):
        sub.add_handler("u", two_args)  # type: ignore[arg-type]
    with pytest.raises(broker.HandlerError):
        await client.subscriber().start()


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(broker.ConfigError, match="BALANCE_STRATEGY"):
        broker.Config.from_env({"BALANCE_STRATEGY": "random"})
    with pytest.raises(broker.ConfigError, match="HEARTBEAT_TTL"):
        broker.Config.from_env({"HEARTBEAT_TTL": "soon"})
    with pytest.raises(broker.ConfigError, match="MAX_JOBS"):
        broker.Config.from_env({"MAX_JOBS": "many"})
    with pytest.raises(broker.ConfigError, match="HEARTBEAT_INTERVAL"):
        broker.Config.from_env({"HEARTBEAT_TTL": "1s", "HEARTBEAT_INTERVAL": "2s"})
    config = broker.Config.from_env(
        {"APP_NAME": "shop", "HEARTBEAT_TTL": "1m", "CLEANUP_TICKER": "500ms", "MAX_JOBS": "4"}
    )
    assert (config.app_name, config.heartbeat_ttl, config.cleanup_interval, config.max_jobs) == (
        "shop",
        60.0,
        0.5,
        4,
    )
