"""The public API's types, checked by ``mypy --strict`` (``assert_type``) and run as a test."""

from __future__ import annotations

from typing import Any, assert_type

import msgspec

import broker


class Query(msgspec.Struct, frozen=True):
    id: int


class Answer(msgspec.Struct, frozen=True):
    id: int


async def test_app_calls_return_what_their_annotations_promise() -> None:
    async with broker.new_memory_client("typing") as client:
        app = broker.App(client)

        @app.on_request("ANSWER")
        async def answer(query: Query) -> Answer:
            return Answer(query.id)

        @app.on_task("TASK")
        def task(payload: dict[str, int]) -> None: ...

        assert_type(answer.__name__, str)  # the decorators return the function itself
        assert_type(task(payload={}), None)
        async with app:
            typed = await app.request("ANSWER", Query(1), returns=Answer)
            assert_type(typed, Answer)
            assert typed == Answer(1)
            untyped = await app.request("ANSWER", Query(2))
            assert_type(untyped, Any)
            assert untyped == Answer(2)  # this app's own handler's return annotation
            assert_type(await app.enqueue("TASK", {"a": 1}), str)
            assert_type(await app.enqueue_many("TASK", [{"a": 1}]), list[str])
            assert_type(await app.broadcast("news", "hi"), int)
            assert_type(app.info(), broker.AppInfo)
            assert_type(await app.stats(), broker.Stats)
            assert_type(await app.health(), broker.Health)
            assert_type(await client.publish("t", 1), str)
