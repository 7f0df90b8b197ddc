"""An App for ``broker worker tests.processes.app_module:app``, configured by the environment.

Task ``WORK`` (payload: an int) appends ``id attempt pid running`` to ``$BROKER_TEST_STARTED``
when it starts and to ``$BROKER_TEST_LEDGER`` when it finishes, ``running`` being how many
WORK handlers of this process ran at that moment; it sleeps ``$BROKER_TEST_SLOW`` seconds in
between. Event ``ping`` (payload: a str) appends ``payload pid`` to ``$BROKER_TEST_EVENTS``.
"""

from __future__ import annotations

import asyncio
import os

import broker
from tests.processes.worker import append_line, open_append

app = broker.App.from_env()
_running = 0


def _record(variable: str, line: str) -> None:
    path = os.environ.get(variable)
    if path:
        fd = open_append(path)
        try:
            append_line(fd, line + "\n")
        finally:
            os.close(fd)


@app.on_task("WORK")
async def work(message: broker.Message[int]) -> None:
    global _running
    _running += 1
    try:
        line = f"{message.id} {message.attempt} {os.getpid()} {_running}"
        _record("BROKER_TEST_STARTED", line)
        await asyncio.sleep(float(os.environ.get("BROKER_TEST_SLOW", "0")))
        _record("BROKER_TEST_LEDGER", line)
    finally:
        _running -= 1


@app.on_event("ping")
async def ping(text: str) -> None:
    _record("BROKER_TEST_EVENTS", f"{text} {os.getpid()}")
