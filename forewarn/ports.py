"""TCP ports: a free one, whether one is taken, and a listening socket for forewarn's servers.

Every server forewarn runs (the console, core's ``/metrics`` and HTTP ingest, the embedded
broker) says why it cannot listen the same way: one line naming the server, the address and the
reason, as a :class:`ListenError` the shell reports with exit code 2.

>>> with listening_socket("the console", "127.0.0.1", 0) as taken:
...     port = taken.getsockname()[1]
...     port_in_use("127.0.0.1", port)
...     try:
...         listening_socket("core's /metrics", "127.0.0.1", port)
...     except ListenError as exc:
...         str(exc) == f"core's /metrics cannot listen on 127.0.0.1:{port}: the port is in use"
True
True
"""

from __future__ import annotations

import errno
import socket

from forewarn.errors import ForewarnError

__all__ = ["ListenError", "cannot_listen", "free_port", "listening_socket", "port_in_use"]


class ListenError(ForewarnError):
    """A server cannot listen where it was asked to (one line: which server, where and why)."""


def cannot_listen(what: str, host: str, port: int, exc: BaseException) -> ListenError:
    """The one-line error for ``what`` failing to listen on ``host:port`` because of ``exc``."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        why = "the port is in use"
    elif isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror
    else:
        why = str(exc) or type(exc).__name__
    return ListenError(f"{what} cannot listen on {host}:{port}: {why}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    """Whether a TCP server could not listen on ``host:port`` now (someone else does).

    >>> with socket.socket() as taken:
    ...     taken.bind(("127.0.0.1", 0))
    ...     taken.listen()
    ...     port_in_use("127.0.0.1", taken.getsockname()[1])
    True
    """
    with socket.socket() as sock:
        # as asyncio's servers do: a port left in TIME_WAIT by an earlier run is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listening_socket(what: str, host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (a name, IPv4 or IPv6) for ``what`` to serve on;
    a :class:`ListenError` saying why not (the port is in use, no such address…)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:  # socket.gaierror too: a host that does not resolve
        raise cannot_listen(what, host, port, exc) from exc
