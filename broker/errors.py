"""Every error the SDK raises, in one tree.

    BrokerError
    ├── ConfigError            bad configuration value (names the variable and what it accepts)
    ├── InvalidArgument        a bad argument: names it and what is accepted (also a ValueError)
    ├── MissingDependency      an optional package is missing: names the extra (also an ImportError)
    ├── InvalidTopic           a topic or group name that would break keys or patterns
    ├── PayloadTooLarge        an encoded payload over the size limit, refused before any I/O
    ├── SerializationError     a payload msgspec cannot encode
    ├── ClientClosed           the client or subscriber was used after aclose()/stop()
    ├── HandlerError           a subscriber was set up wrongly (duplicate topic, bad signature)
    ├── RequestTimeout         an RPC request got no reply in time (also a TimeoutError)
    ├── NoResponder            an RPC request to a name no live member handles (refused at once)
    ├── RemoteError            an RPC handler raised; carries the remote type and message
    └── BackendError           the storage or registry failed
        └── BackendUnavailable the backend could not be reached

Driver errors are wrapped at the boundary with ``raise ... from exc`` so callers catch one type.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "BrokerError",
    "ClientClosed",
    "ConfigError",
    "HandlerError",
    "InvalidArgument",
    "InvalidTopic",
    "MissingDependency",
    "NoResponder",
    "PayloadTooLarge",
    "RemoteError",
    "RequestTimeout",
    "SerializationError",
]


class BrokerError(Exception):
    """Base class of every error raised by broker."""


class ConfigError(BrokerError, ValueError):
    """A configuration value is missing or malformed."""

    def __init__(self, variable: str, value: object, accepted: str) -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted
        super().__init__(f"{variable}={value!r} is not valid: expected {accepted}")


class InvalidArgument(BrokerError, ValueError):
    """An argument has a value the call does not accept.

    ``argument`` names it, ``got`` is the value (or a description of it), ``accepted`` says
    what the call takes.
    """

    def __init__(self, argument: str, got: object, accepted: str) -> None:
        self.argument = argument
        self.got = got
        self.accepted = accepted
        super().__init__(f"{argument}: got {got!r}; accepted: {accepted}")


class MissingDependency(BrokerError, ImportError):
    """A feature needs an optional dependency that is not installed.

    ``package`` is the missing import, ``extra`` the ``broker[...]`` extra that provides it.
    """

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed: "
            f"pip install 'broker[{extra}]'"
        )


class InvalidTopic(BrokerError, ValueError):
    """A topic (or group) name is not allowed."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(
            f"invalid name {topic!r}: {reason}; use 1-200 characters of letters, digits and ._-:/"
        )


class PayloadTooLarge(BrokerError, ValueError):
    """An encoded payload is larger than ``max_payload_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"payload is {size} bytes, over the {limit}-byte limit (raise max_payload_bytes "
            "or MAX_PAYLOAD_BYTES, or store the data elsewhere and send a reference)"
        )


class SerializationError(BrokerError, TypeError):
    """A payload could not be encoded."""


class ClientClosed(BrokerError, RuntimeError):
    """The client or subscriber was used after it was closed."""


class HandlerError(BrokerError, TypeError):
    """A handler was registered wrongly."""


class RequestTimeout(BrokerError, TimeoutError):
    """No reply to an RPC request arrived within its timeout."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(
            f"no reply to request {name!r} within {timeout:g}s (its worker was busy, "
            f"slow or stopped meanwhile)"
        )


class NoResponder(BrokerError, LookupError):
    """No live member handles the requested name: the request was not stored or sent."""

    def __init__(self, name: str, group: str) -> None:
        self.name = name
        self.group = group
        super().__init__(
            f"no live worker handles request {name!r} (group {group!r}): start a worker "
            f"with on_request({name!r}) on the same Redis and QUEUE_PREFIX"
        )


class RemoteError(BrokerError):
    """The handler of an RPC request raised; ``remote_type`` names the exception's class
    (``module.QualName``) and ``remote_message`` its text."""

    def __init__(self, name: str, remote_type: str, remote_message: str) -> None:
        self.name = name
        self.remote_type = remote_type
        self.remote_message = remote_message
        super().__init__(f"request {name!r} failed remotely: {remote_type}: {remote_message}")


class BackendError(BrokerError):
    """The backend failed to store or deliver."""


class BackendUnavailable(BackendError, ConnectionError):
    """The backend could not be reached."""
