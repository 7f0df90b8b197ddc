"""An App for ``broker worker tests.faults.rpc_app:app``: request ``echo`` returns its payload
after sleeping ``$BROKER_TEST_SLOW`` seconds."""

from __future__ import annotations

import asyncio
import os

import broker

app = broker.App.from_env()


@app.on_request("echo")
async def echo(payload: int) -> int:
    await asyncio.sleep(float(os.environ.get("BROKER_TEST_SLOW", "0")))
    return payload
