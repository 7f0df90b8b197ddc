"""broker: asyncio messaging between services with single delivery and balancing strategies.

``__all__`` is what applications call. What backend and strategy authors implement lives in its
own module: `broker.protocols` (Queue, Registry, Dispatcher, Strategy, ...), `broker.message`
(Envelope, Delivery), `broker.backend` (Backend, Connector) and `broker.connectors`.
"""

import importlib
import warnings

from broker.app import TASK_GROUP, App, AppInfo
from broker.client import Client, Health, Stats
from broker.clock import ManualClock, SystemClock
from broker.config import Config, parse_duration
from broker.errors import (
    BackendError,
    BackendUnavailable,
    BrokerError,
    ClientClosed,
    ConfigError,
    HandlerError,
    InvalidArgument,
    InvalidTopic,
    MissingDependency,
    NoResponder,
    PayloadTooLarge,
    RemoteError,
    RequestTimeout,
    SerializationError,
)
from broker.factory import (
    client_from_env,
    connect,
    new_client,
    new_hybrid_client,
    new_memory_client,
    new_redis_client,
)
from broker.handlers import HandlerFunc
from broker.message import DeadLetter, Message
from broker.protocols import ComponentHealth, GroupStats, MemberInfo
from broker.subscriber import Subscriber
from broker.sync import SyncProducer

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppInfo",
    "BackendError",
    "BackendUnavailable",
    "BrokerError",
    "Client",
    "ClientClosed",
    "ComponentHealth",
    "Config",
    "ConfigError",
    "DeadLetter",
    "GroupStats",
    "HandlerError",
    "HandlerFunc",
    "Health",
    "InvalidArgument",
    "InvalidTopic",
    "ManualClock",
    "MemberInfo",
    "Message",
    "MissingDependency",
    "NoResponder",
    "PayloadTooLarge",
    "RemoteError",
    "RequestTimeout",
    "SerializationError",
    "Stats",
    "Subscriber",
    "SyncProducer",
    "SystemClock",
    "TASK_GROUP",
    "__version__",
    "client_from_env",
    "connect",
    "new_client",
    "new_hybrid_client",
    "new_memory_client",
    "new_redis_client",
    "parse_duration",
]


# Names that were exported here before they moved to the module of their layer.
_MOVED = {
    "Balancer": "broker.protocols",
    "Candidate": "broker.protocols",
    "ChannelCallback": "broker.protocols",
    "Channels": "broker.protocols",
    "Clock": "broker.protocols",
    "Queue": "broker.protocols",
    "Registry": "broker.protocols",
    "Strategy": "broker.protocols",
    "StrategyFactory": "broker.protocols",
    "Delivery": "broker.message",
    "Envelope": "broker.message",
}


def __getattr__(name: str) -> object:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    warnings.warn(
        f"broker.{name} moved to {module}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
