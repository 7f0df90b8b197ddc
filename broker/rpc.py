"""RPC: requests travel as single-delivery messages; replies come back on the caller's own
channel, matched by a uuid correlation id.

A request is published on topic ``rpc:NAME`` with ``max_attempts=1`` and three headers: the
caller's reply channel, the correlation id and the caller's deadline. The responder runs the
handler once and sends a `Reply` (the result, or the exception's type and text) to that
channel. A request found after its deadline is dropped unrun, and a request whose responder
died is dead-lettered rather than run twice: RPC is at-most-once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from broker.errors import ClientClosed, InvalidArgument, NoResponder, RemoteError, RequestTimeout
from broker.handlers import Handler
from broker.message import ContentType, Message

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from broker.client import Client

__all__ = ["CORRELATION_ID", "DEADLINE", "REPLY_TO", "Reply", "Requester", "Responder"]

log = logging.getLogger("broker")

REPLY_TO = "reply-to"
CORRELATION_ID = "correlation-id"
DEADLINE = "deadline"


class Reply(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What a responder sends back: the encoded result, or the error."""

    correlation_id: str
    ok: bool
    payload: bytes = b""
    content_type: ContentType = "msgpack"
    error_type: str = ""
    error: str = ""


_encode_reply = msgspec.msgpack.Encoder().encode
_decode_reply = msgspec.msgpack.Decoder(Reply).decode


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


class Requester:
    """The calling side of one client: its reply channel and the requests waiting on it."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.channel = f"reply:{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._listening = False
        self._lock = asyncio.Lock()
        self._forget: Callable[[], None] | None = None
        self.late_replies = 0

    @property
    def pending(self) -> int:
        """Requests waiting for their reply."""
        return len(self._pending)

    async def _listen(self) -> None:
        if self._listening:
            return
        async with self._lock:
            if not self._listening:
                await self._client.channels.listen(self.channel, self._on_reply)
                self._listening = True
                # the client closing first ends waiting requests too
                self._forget = self._client.on_close(self.aclose)

    def _on_reply(self, data: bytes) -> None:
        try:
            reply = _decode_reply(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("dropped an unreadable reply on %s", self.channel)
            return
        future = self._pending.pop(reply.correlation_id, None)
        if future is None or future.done():
            self.late_replies += 1  # its request timed out: dropped
            return
        future.set_result(reply)

    async def request(
        self,
        name: str,
        topic: str,
        payload: object,
        *,
        group: str,
        timeout: float,
        returns: Any,
        key: str | None,
        headers: dict[str, str] | None,
    ) -> Any:
        """Publish a request to ``group`` and wait for its reply, its remote error or the
        timeout; `NoResponder` at once when no live member of ``group`` handles ``topic``."""
        if timeout <= 0:
            raise InvalidArgument("timeout", timeout, "a number of seconds above zero")
        loop = asyncio.get_running_loop()
        correlation = uuid.uuid4().hex
        meta = dict(headers) if headers else {}
        meta.update(
            {
                REPLY_TO: self.channel,
                CORRELATION_ID: correlation,
                DEADLINE: repr(time.time() + timeout),
            }
        )
        future: asyncio.Future[Reply] = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._listen()
                self._pending[correlation] = future
                client = self._client
                envelopes = client.envelopes(topic, [payload], [key], meta, 1)
                if not await client.send(group, topic, envelopes, require_member=True):
                    raise NoResponder(name, group)
                reply = await future
        except TimeoutError:
            raise RequestTimeout(name, timeout) from None
        finally:
            self._pending.pop(correlation, None)
        if not reply.ok:
            raise RemoteError(name, reply.error_type, reply.error)
        decode = self._client.codec.decoder(reply.content_type, Any if returns is None else returns)
        return decode(reply.payload)

    async def aclose(self) -> None:
        """Stop listening; requests still waiting fail with `ClientClosed`."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ClientClosed("the app stopped before the reply came"))
        self._pending.clear()
        if self._forget is not None:
            self._forget()
            self._forget = None
        if self._listening:
            self._listening = False
            await self._client.channels.unlisten(self.channel, self._on_reply)


class Responder:
    """The handler registered for ``rpc:NAME``: runs the user's function once per request and
    sends the result or the error to the caller's channel."""

    def __init__(self, client: Client, handler: Handler, executor: Executor | None) -> None:
        self._client = client
        self._handler = handler
        self.executor = executor
        self.expired = 0
        """Requests dropped unrun past their deadline or cancelled at it."""

    async def respond(self, message: Message[msgspec.Raw]) -> None:
        """Run the handler for one request and send its reply.

        A request found after its deadline is dropped unrun; a handler still running at the
        deadline is cancelled (a sync handler's thread runs on, its result is dropped). Both
        count in `expired` and send nothing: the caller has given up.
        """
        headers = message.headers
        reply_to, correlation = headers.get(REPLY_TO), headers.get(CORRELATION_ID)
        if not reply_to or not correlation:
            raise InvalidArgument("headers", sorted(headers), f"{REPLY_TO} and {CORRELATION_ID}")
        left = float(headers.get(DEADLINE, "inf")) - time.time()
        if left <= 0:
            self.expired += 1
            log.info("request %s reached its worker after the caller gave up; dropped", message.id)
            return
        handler = self._handler
        codec = self._client.codec
        deadline = asyncio.timeout(None if left == float("inf") else left)
        try:
            async with deadline:
                # decoded here, not by the subscriber, so a bad payload reaches the caller
                decode = codec.decoder(message.content_type, handler.payload_type)
                payload = decode(message.payload)
                if handler.wants_message:
                    payload = msgspec.structs.replace(message, payload=payload)
                result = await handler.call(payload, self.executor)
            reply = Reply(correlation, True, codec.encode(result), codec.content_type)
        except TimeoutError as exc:
            if deadline.expired():
                self.expired += 1
                log.info("request %s cancelled at the caller's deadline", message.id)
                return
            reply = Reply(correlation, False, error_type=_type_name(exc), error=str(exc))
        except Exception as exc:
            reply = Reply(correlation, False, error_type=_type_name(exc), error=str(exc))
        await self._client.channels.send(reply_to, _encode_reply(reply))
