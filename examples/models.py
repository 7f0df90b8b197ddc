"""Message types shared by examples/worker.py and examples/client.py."""

import msgspec


class Order(msgspec.Struct, frozen=True):
    id: str
    amount_cents: int = 0


class Login(msgspec.Struct, frozen=True):
    username: str


class UserQuery(msgspec.Struct, frozen=True):
    id: int


class UserInfo(msgspec.Struct, frozen=True):
    id: int
    name: str
    orders: int
