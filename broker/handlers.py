"""Handlers: how a user's function is called with a decoded, validated payload."""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from broker.errors import HandlerError
from broker.message import Codec, Delivery, Message

__all__ = ["Handler", "HandlerFunc", "payload_type_of"]

HandlerFunc = Callable[[Any], Awaitable[object]] | Callable[[Any], object]


class Handler:
    """One function bound to one topic.

    The first parameter's annotation decides what the function receives:
    ``Message[T]`` (or no annotation, for ``Message[Any]``) gets the message with its payload
    decoded into ``T``; any other type ``T`` gets the decoded payload alone.
    Coroutine functions are awaited; plain functions run in the subscriber's thread pool.
    """

    __slots__ = ("_decoders", "func", "is_async", "payload_type", "topic", "wants_message")

    def __init__(self, topic: str, func: HandlerFunc, *, payload_type: Any = None) -> None:
        self.topic = topic
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        if payload_type is None:
            self.payload_type, self.wants_message = payload_type_of(func)
        else:  # told explicitly: the function gets the whole Message of that payload type
            self.payload_type, self.wants_message = payload_type, True
        self._decoders: dict[str, Callable[[bytes], Any]] = {}

    def argument(self, codec: Codec, delivery: Delivery) -> object:
        """Decode the payload; raises msgspec's DecodeError / ValidationError if it does not fit."""
        envelope = delivery.envelope
        decode = self._decoders.get(envelope.content_type)
        if decode is None:
            decode = self._decoders[envelope.content_type] = codec.decoder(
                envelope.content_type, self.payload_type
            )
        payload = decode(envelope.payload)
        if not self.wants_message:
            return payload
        return Message(
            envelope.id,
            envelope.topic,
            payload,
            envelope.key,
            envelope.headers,
            delivery.attempt,
            envelope.max_attempts,
            envelope.created_at,
            envelope.content_type,
        )

    async def call(self, argument: object, executor: Executor | None) -> object:
        """Run the function: awaited if async, in ``executor`` if not."""
        if self.is_async:
            return await self.func(argument)  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(self.func, argument))


def payload_type_of(func: HandlerFunc) -> tuple[Any, bool]:
    """What ``func``'s first parameter asks for: (payload type, whether it wants the Message).

    Raises:
        HandlerError: the function does not take exactly one required positional parameter,
            or its annotations cannot be resolved.
    """
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise HandlerError(f"cannot inspect handler {func!r}: {exc}") from exc
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) != 1:
        raise HandlerError(
            f"handler {getattr(func, '__qualname__', func)!r} must take exactly one required "
            "positional parameter (the message or its payload)"
        )
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError) as exc:
        raise HandlerError(f"cannot resolve the annotations of handler {func!r}: {exc}") from exc
    annotation = hints.get(positional[0].name, inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty or annotation is Message:
        return Any, True
    if typing.get_origin(annotation) is Message:
        return typing.get_args(annotation)[0], True
    return annotation, False
