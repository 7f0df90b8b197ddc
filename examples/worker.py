"""A worker: handles the NEW_ORDER task, the user_events event and the GET_USER_INFO request.

Run it against Redis (start examples/client.py in another terminal):

    cd examples
    BROKER_MODE=redis REDIS_URL=redis://127.0.0.1:6379/0 broker worker worker:app
    # or: BROKER_MODE=redis python worker.py

Every setting comes from the environment (APP_NAME, BROKER_MODE, REDIS_URL, MAX_JOBS, ...).
"""

import asyncio
import logging

from models import Login, Order, UserInfo, UserQuery

import broker

app = broker.App.from_env()
log = logging.getLogger("worker")


@app.on_task("NEW_ORDER")
async def process_order(order: Order) -> None:
    log.info("processing order %s (%d cents)", order.id, order.amount_cents)
    await asyncio.sleep(0.05)  # the order's real work


@app.on_event("user_events")
async def log_login(event: Login) -> None:
    log.info("%s logged in", event.username)


@app.on_request("GET_USER_INFO")
async def get_user(query: UserQuery) -> UserInfo:
    if query.id < 0:
        raise LookupError(f"no user {query.id}")
    return UserInfo(id=query.id, name=f"user-{query.id}", orders=query.id % 7)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(app.run())
