"""broker: asyncio messaging between services with single delivery and balancing strategies."""

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
    new_client,
    new_hybrid_client,
    new_memory_client,
    new_redis_client,
)
from broker.handlers import HandlerFunc
from broker.message import DeadLetter, Delivery, Envelope, Message
from broker.protocols import (
    Balancer,
    Candidate,
    ChannelCallback,
    Channels,
    Clock,
    ComponentHealth,
    GroupStats,
    MemberInfo,
    Queue,
    Registry,
    Strategy,
    StrategyFactory,
)
from broker.subscriber import Subscriber
from broker.sync import SyncProducer

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppInfo",
    "BackendError",
    "BackendUnavailable",
    "Balancer",
    "BrokerError",
    "Candidate",
    "ChannelCallback",
    "Channels",
    "Client",
    "ClientClosed",
    "Clock",
    "ComponentHealth",
    "Config",
    "ConfigError",
    "DeadLetter",
    "Delivery",
    "Envelope",
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
    "Queue",
    "Registry",
    "RemoteError",
    "RequestTimeout",
    "SerializationError",
    "Stats",
    "Strategy",
    "StrategyFactory",
    "Subscriber",
    "SyncProducer",
    "SystemClock",
    "TASK_GROUP",
    "__version__",
    "client_from_env",
    "new_client",
    "new_hybrid_client",
    "new_memory_client",
    "new_redis_client",
    "parse_duration",
]
