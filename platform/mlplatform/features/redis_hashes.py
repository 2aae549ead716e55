"""``HMGET``s on Redis connections of the reader's own, each command's field list encoded once.

Why not redis-py's ``Redis.hmget`` or a pipeline: a model server asks Redis the same question (the same fields,
another key) thousands of times a second, and a command's trip through the client (argument encoding, the
connection pool's fork check and lock, the retry wrapper, the response callbacks) cost more CPU than the round
trip's own system calls.  Measured on one core against a local Redis (``time.process_time``, 20,000 calls): one
``HMGET`` of 12 fields 68 us through ``Redis.hmget`` against 29 us here, and 32 of them 258 us through a pipeline
against about 140 us.

Two ways to wait for the replies:
* ``HashReads`` blocks its thread: a connection per thread made by redis-py's own connection class with the
  pool's own options (TLS, password, database, time-outs), which also reads the replies.
* ``LoopHashReads`` lets an event loop wait: requests write their commands on one connection per loop and are
  woken when hiredis has parsed their replies, so the loop scores other requests meanwhile.  A read that blocks
  the loop holds it for the whole round trip, and on a busy machine Redis is not answering the microsecond it is
  asked: at 1,600 requests/s a server reading on its loop had it a quarter idle in that wait while requests
  queued behind it.  The price is the loop's wake-up: one request at a time, an awaited read used 64-72 us of
  CPU against the blocking one's 55, but four waiting together 24-28 us each, since one write and one wake-up then
  serve several.  redis-py's asyncio client was tried first; its command path cost more CPU than the wait
  (docs/serving.md).  It covers plain TCP and Unix sockets with a password, a database and a client name;
  anything else (TLS, a credential provider, another connection class) keeps ``HashReads``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import hiredis


def packed(*parts: bytes) -> bytes:
    """One command in Redis's wire format (RESP): the count of its parts, then each part."""
    return b"*%d\r\n%s" % (len(parts), _bulk_strings(parts))


def _bulk_strings(parts: Sequence[bytes]) -> bytes:
    """Each part as a RESP bulk string (its length, then its bytes)."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


class HashFields:
    """``HMGET <key> <field> ...`` in Redis's wire format (RESP) for one list of fields, but the key."""

    __slots__ = ("_head", "_tail")

    def __init__(self, fields: Sequence[bytes]) -> None:
        self._head = b"*%d\r\n%s" % (len(fields) + 2, _bulk_strings([b"HMGET"]))
        self._tail = _bulk_strings(fields)

    def command(self, key: bytes) -> bytes:
        """The whole command for ``key``."""
        return b"%s$%d\r\n%s\r\n%s" % (self._head, len(key), key, self._tail)


class HashReads:
    """Sends prepared commands in one write and reads their replies, on one connection per thread.

    A failure of any kind (time-out, reset, an error reply) closes that thread's connection: a reply may be left
    unread, and the next read must not take it for its own.  The next read connects again.  A thread's
    connection closes when this object is collected (a model swap plans a new reader) or the thread ends.
    """

    def __init__(self, connection_class: Any, options: dict[str, Any]) -> None:
        """``connection_class`` and ``options``: a redis-py connection pool's (``connection_kwargs``)."""
        self._connection_class = connection_class
        self._options = options
        self._local = threading.local()

    def replies(self, commands: list[bytes]) -> list[list[bytes | None]]:
        """Each command's reply, in order (an ``HMGET``'s: a value or ``None`` per field)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connection_class(**self._options)
        try:
            connection.send_packed_command([b"".join(commands)], check_health=False)
            return [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()
            raise


Connect = Callable[
    [asyncio.AbstractEventLoop, Callable[[], "_Replies"]],
    Coroutine[Any, Any, tuple[asyncio.BaseTransport, "_Replies"]],
]
"""Opens a connection on a loop with a protocol factory (``loop.create_connection`` or its Unix twin)."""

WATCHES_PER_TIMEOUT = 4
"""How often per time-out a connection with requests waiting checks the oldest one's deadline: a request past its
time-out fails within a quarter of it more.  One timer per connection, not one per request: uvloop's timers cost
about a tenth of a read."""


class _Waiter:
    """One request's place in its connection's queue: how many replies it waits for, those come so far, and
    when it is late."""

    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(self, count: int, future: asyncio.Future[list[Any]], deadline: float) -> None:
        self.count = count
        self.future = future
        self.deadline = deadline
        self.replies: list[Any] = []


class _Replies(asyncio.Protocol):
    """One Redis connection shared by a loop's requests: replies come back in the order commands were written,
    so each goes to the oldest waiting request until it has them all.

    Any failure of the connection (closed, reset, a reply that is not Redis's protocol, a request past its
    time-out) fails every request waiting on it and closes it: a reply left unread must never be taken for a
    later request's.  An error reply (``WRONGTYPE``) fails its own request only; the connection stays in step.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self._parser = hiredis.Reader()
        self._waiting: deque[_Waiter] = deque()
        self._transport: asyncio.Transport | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.failure: Exception | None = None

    @property
    def open(self) -> bool:
        return self.failure is None and self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports subclass none of asyncio's

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                if not self._waiting:
                    raise ConnectionError("Redis sent a reply nobody asked for")
                waiter = self._waiting[0]
                waiter.replies.append(reply)
                if len(waiter.replies) == waiter.count:
                    self._waiting.popleft()
                    if not waiter.future.done():
                        waiter.future.set_result(waiter.replies)
        except (hiredis.ProtocolError, ConnectionError) as error:
            self.fail(ConnectionError(f"the Redis connection is out of step: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis closed the connection: {exc}" if exc else "Redis closed the connection"))

    def fail(self, error: Exception) -> None:
        """Close the connection and fail every waiting request with ``error`` (the first failure stands)."""
        if self.failure is None:
            self.failure = error
        if self._transport is not None:
            self._transport.abort()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(self.failure)

    async def send(self, commands: list[bytes]) -> list[Any]:
        """Each command's reply, in order, within ``timeout_s`` of the write (a quarter more at most)."""
        if self.failure is not None or self._transport is None:
            raise self.failure or ConnectionError("the Redis connection is not open")
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._waiting.append(_Waiter(len(commands), future, self.loop.time() + self.timeout_s))
        self._transport.write(b"".join(commands))
        if self._watch is None:
            self._watch = self.loop.call_later(self.timeout_s / WATCHES_PER_TIMEOUT, self._check_deadline)
        replies = await future
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise reply
        return replies

    def _check_deadline(self) -> None:
        """Fail the connection if its oldest request is late; watch again while requests wait."""
        self._watch = None
        if not self._waiting:
            return
        if self._waiting[0].deadline <= self.loop.time():
            self.fail(TimeoutError(f"Redis did not answer within {self.timeout_s:g}s"))
        else:
            self._watch = self.loop.call_later(self.timeout_s / WATCHES_PER_TIMEOUT, self._check_deadline)


class LoopHashReads:
    """Sends prepared commands and awaits their replies, on one connection per event loop.

    Every read is bounded by ``timeout_s``: connecting and the handshake, then each request's replies.  A
    failed connection is replaced by the next read.  The connection closes when this object is collected (a
    model swap plans a new reader).
    """

    def __init__(self, connect: Connect, handshake: list[bytes], timeout_s: float) -> None:
        """``connect`` opens a connection on a loop; ``handshake``: the commands each new connection sends
        first (``AUTH``, ``CLIENT SETNAME``, ``SELECT``), each of which must succeed."""
        self._connect = connect
        self._handshake = handshake
        self._timeout_s = timeout_s
        self._connection: _Replies | None = None
        self._opening: asyncio.Task[_Replies] | None = None
        self._closer: weakref.finalize[[_Replies], LoopHashReads] | None = None

    async def replies(self, commands: list[bytes]) -> list[list[bytes | None]]:
        """Each command's reply, in order (an ``HMGET``'s: a value or ``None`` per field)."""
        connection = self._connection
        if connection is None or not connection.open or connection.loop is not asyncio.get_running_loop():
            connection = await self._connected()
        return await connection.send(commands)

    async def _connected(self) -> _Replies:
        """The open connection, shared by the requests that find none: the first opens it, the others wait."""
        loop = asyncio.get_running_loop()
        opening = self._opening
        if opening is None or opening.get_loop() is not loop:
            opening = self._opening = loop.create_task(self._open(loop))
        try:
            connection = await asyncio.shield(opening)
        finally:
            if self._opening is opening and opening.done():
                self._opening = None
        self._replace(connection)
        return connection

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Replies:
        timeout_s = self._timeout_s
        _, connection = await asyncio.wait_for(self._connect(loop, lambda: _Replies(loop, timeout_s)), timeout_s)
        try:
            if self._handshake:
                await connection.send(self._handshake)
        except BaseException as error:
            connection.fail(ConnectionError(f"the Redis handshake failed: {error}"))
            raise
        return connection

    def _replace(self, connection: _Replies) -> None:
        if connection is self._connection:
            return
        if self._closer is not None:
            self._closer()
        self._connection = connection
        self._closer = weakref.finalize(self, _close_on_its_loop, connection)


def _close_on_its_loop(connection: _Replies) -> None:
    """Close a connection from any thread (a collected reader's, or one its loop no longer serves)."""
    if not connection.loop.is_closed():
        connection.loop.call_soon_threadsafe(connection.fail, ConnectionError("the reader closed its connection"))


def loop_hash_reads(connection_class: Any, options: dict[str, Any], timeout_s: float) -> LoopHashReads | None:
    """``LoopHashReads`` to the server a redis-py connection pool's ``connection_class`` and ``options`` name, or
    ``None`` where that needs more than a plain socket and a handshake (TLS, a credential provider)."""
    import redis

    if options.get("credential_provider") is not None:
        return None
    if connection_class is redis.Connection:
        host, port = str(options.get("host") or "localhost"), int(options.get("port") or 6379)

        def connect(loop: asyncio.AbstractEventLoop, protocol: Callable[[], _Replies]) -> Any:
            return loop.create_connection(protocol, host, port)

    elif connection_class is redis.UnixDomainSocketConnection:
        path = str(options["path"])

        def connect(loop: asyncio.AbstractEventLoop, protocol: Callable[[], _Replies]) -> Any:
            return loop.create_unix_connection(protocol, path)

    else:
        return None
    return LoopHashReads(connect, _handshake(options), timeout_s)


def _handshake(options: dict[str, Any]) -> list[bytes]:
    """The commands redis-py's connection would send on connecting, for the options a plain socket takes."""
    commands = []
    username, password = options.get("username"), options.get("password")
    if password is not None:
        credentials = [username, password] if username is not None else [password]
        commands.append(packed(b"AUTH", *(str(part).encode() for part in credentials)))
    if options.get("client_name"):
        commands.append(packed(b"CLIENT", b"SETNAME", str(options["client_name"]).encode()))
    if options.get("db"):
        commands.append(packed(b"SELECT", str(int(options["db"])).encode()))
    return commands
