"""Bad arguments raise `InvalidArgument` naming the argument, the value and what is accepted."""

from __future__ import annotations

import msgspec
import pytest

import broker
from broker.backends.redis.dispatch import IN_SCRIPT, RedisDispatcher
from broker.backends.redis.keys import Keys
from broker.message import Codec, Message
from broker.rpc import Responder


def check(error: pytest.ExceptionInfo[broker.InvalidArgument], argument: str, got: str) -> None:
    assert error.value.argument == argument
    text = str(error.value)
    assert text.startswith(f"{argument}: got {got}; accepted: "), text
    assert error.value.accepted in text
    assert isinstance(error.value, ValueError), "except ValueError keeps working"


def test_invalid_argument_message_and_fields() -> None:
    error = broker.InvalidArgument("max_jobs", 0, "an integer of 1 or more")
    assert str(error) == "max_jobs: got 0; accepted: an integer of 1 or more"
    assert (error.argument, error.got, error.accepted) == ("max_jobs", 0, "an integer of 1 or more")
    assert isinstance(error, broker.BrokerError)


def test_missing_dependency_names_the_extra() -> None:
    error = broker.MissingDependency("BROKER_MODE=redis", "redis", "redis")
    assert "pip install 'broker[redis]'" in str(error)
    assert isinstance(error, ImportError)
    assert not isinstance(error, broker.ConfigError)


async def test_client_and_subscriber_arguments() -> None:
    async with broker.new_memory_client("shop") as client:
        with pytest.raises(broker.InvalidArgument) as info:
            await client.publish_many("t", [1, 2], keys=["a"])
        check(info, "keys", "1")
        assert "2" in info.value.accepted
        with pytest.raises(broker.InvalidArgument) as info:
            await client.set_weight("m", -1)
        check(info, "weight", "-1")
        with pytest.raises(broker.InvalidArgument) as info:
            client.subscriber(max_jobs=0)
        check(info, "max_jobs", "0")
        with pytest.raises(broker.InvalidArgument) as info:
            client.subscriber(weight=-2)
        check(info, "weight", "-2")
        sub = client.subscriber()
        with pytest.raises(broker.InvalidArgument) as info:
            await sub.set_weight(-3)
        check(info, "weight", "-3")


async def test_app_arguments() -> None:
    async with broker.new_memory_client("shop") as client:
        with pytest.raises(broker.InvalidArgument) as info:
            broker.App(client, max_jobs=0)
        check(info, "max_jobs", "0")
        with pytest.raises(broker.InvalidArgument) as info:
            broker.App(client, event_buffer=0)
        check(info, "event_buffer", "0")
        app = broker.App(client)
        with pytest.raises(broker.InvalidArgument) as info:
            await app.request("price", 1, timeout=0)
        check(info, "timeout", "0")


def test_codec_content_types() -> None:
    with pytest.raises(broker.InvalidArgument) as info:
        Codec("xml")  # type: ignore[arg-type]
    check(info, "content_type", "'xml'")
    with pytest.raises(broker.InvalidArgument) as info:
        Codec().decoder("yaml", int)  # type: ignore[arg-type]
    check(info, "content_type", "'yaml'")


async def test_a_request_without_its_headers() -> None:
    async with broker.new_memory_client("shop") as client:
        responder = Responder(client, None, None)  # type: ignore[arg-type]
        message = Message(
            id="m", topic="rpc:price", payload=msgspec.Raw(b"\x01"), key=None, headers={},
            attempt=1, max_attempts=1, created_at=0.0,
        )  # fmt: skip
        with pytest.raises(broker.InvalidArgument) as info:
            await responder.respond(message)
        check(info, "headers", "[]")


def test_manual_clock_cannot_go_back() -> None:
    with pytest.raises(broker.InvalidArgument) as info:
        broker.ManualClock().advance(-1)
    check(info, "seconds", "-1")


def test_redis_dispatcher_strategy_name() -> None:
    with pytest.raises(broker.InvalidArgument) as info:
        RedisDispatcher(None, Keys("p"), None, None, "random", broker.SystemClock())  # type: ignore[arg-type]
    check(info, "strategy", "'random'")
    assert all(name in info.value.accepted for name in IN_SCRIPT)
