"""Quickstart: three subscribers in one group, each balancing strategy in turn.

Run it with ``python examples/quickstart.py``. It needs nothing but this package: the memory
backend runs in the process. For every strategy it publishes a few hundred orders, shows how
many each member handled, and checks no order was handled twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec

import broker


class Order(msgspec.Struct):
    id: int
    customer: str
    total: float


WEIGHTS = {"alpha": 3, "bravo": 2, "charlie": 1}
ORDERS = 600


async def run(strategy: str) -> None:
    handled: Counter[str] = Counter()
    seen: set[str] = set()
    duplicates = 0

    async with broker.new_memory_client("shop", strategy=strategy) as client:
        for name, weight in WEIGHTS.items():
            sub = client.subscriber(member_id=name, weight=weight, max_jobs=8)

            def make_handler(member: str) -> broker.HandlerFunc:
                async def on_order(msg: broker.Message[Order]) -> None:
                    nonlocal duplicates
                    if msg.id in seen:
                        duplicates += 1
                    seen.add(msg.id)
                    handled[member] += 1
                    # a slower member: least_conn should send it less
                    await asyncio.sleep(0.002 if member == "charlie" else 0)

                return on_order

            sub.add_handler("orders.created", make_handler(name))
            await sub.start()

        for i in range(ORDERS):
            order = Order(id=i, customer=f"customer-{i % 40}", total=10.0 + i)
            await client.publish("orders.created", order, key=order.customer)
            if i % 10 == 9:
                await asyncio.sleep(0.001)  # orders arrive over time, not all at once
        await client.join()

    shares = "  ".join(f"{name}={handled[name]:>3}" for name in WEIGHTS)
    verdict = "ok" if duplicates == 0 and len(seen) == ORDERS else "DUPLICATES!"
    print(
        f"{strategy:<16} {shares}   handled {len(seen)}/{ORDERS}, duplicates {duplicates}: "
        f"{verdict}"
    )


async def main() -> None:
    print(f"3 members (weights {WEIGHTS}), {ORDERS} orders per strategy\n")
    for strategy in ("round_robin", "weighted", "consistent_hash", "least_conn"):
        await run(strategy)


if __name__ == "__main__":
    asyncio.run(main())
