"""A producer: enqueues a task, broadcasts an event and makes a request.

With BROKER_MODE=redis (or hybrid) it talks to the worker of examples/worker.py running in
another process. In the default memory mode it starts that worker's app in this process,
since the memory backend does not leave the process.

    cd examples
    BROKER_MODE=redis python client.py
"""

import asyncio

from models import Login, Order, UserInfo, UserQuery

import broker


async def main() -> None:
    app = broker.App.from_env()
    if app.client.config.mode == "memory":
        from worker import app  # one process: produce with the worker's own app

        await app.start()
        print("memory mode: the worker runs in this process (BROKER_MODE=redis to split them)")
    try:
        order_id = await app.enqueue("NEW_ORDER", Order(id="ORD-12345", amount_cents=4200))
        print(f"enqueued NEW_ORDER as message {order_id}")

        listeners = await app.broadcast("user_events", Login(username="Alice"))
        print(f"broadcast user_events to {listeners} listening process(es)")

        info = await app.request("GET_USER_INFO", UserQuery(id=99), timeout=5.0, returns=UserInfo)
        print(f"GET_USER_INFO -> {info}")

        try:
            await app.request("GET_USER_INFO", UserQuery(id=-1), timeout=5.0)
        except broker.RemoteError as exc:
            print(f"GET_USER_INFO(-1) -> RemoteError {exc.remote_type}: {exc.remote_message}")
        await app.client.join(timeout=10.0)
        print("done: the order was handled")
    except (broker.NoResponder, broker.RequestTimeout) as exc:
        print(f"{exc}\nstart the worker first: BROKER_MODE=redis broker worker worker:app")
        raise SystemExit(1) from None
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main())
