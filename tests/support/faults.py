"""Faults the fault-injection tests cause: a TCP proxy that can stop forwarding (a blackhole), and private Redis
and PostgreSQL servers on free ports that a test may stop, restart or blackhole without touching the machine's
own services on 6379 and 5432."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.environment import free_port
from tests.support.waiting import wait_for

PUMP_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``blackhole()`` makes it stop forwarding in both directions.

    A blackhole is what a dead network path or a hung server looks like to a client: connections open and bytes
    go out, but nothing ever comes back; only the client's own timeouts save it.  ``restore()`` forwards again
    (connections opened meanwhile stay stalled until their clients give up on them, as after a real outage)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stopped = threading.Event()
        self._stalled: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._acceptor = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        self._forwarding.clear()

    def restore(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self._stopped.set()
        self._forwarding.set()
        self._acceptor.join(5)
        self._listener.close()
        for held in self._stalled:
            held.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._forwarding.is_set():
                self._stalled.append(client)  # accepted, never answered: the blackhole
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes while forwarding; during a blackhole, swallow them (nothing reaches the peer, no answer comes
        back, the connection stays open)."""
        source.settimeout(0.2)
        try:
            while not self._stopped.is_set():
                try:
                    data = source.recv(PUMP_CHUNK)
                except TimeoutError:
                    continue
                if not data:
                    return
                if self._forwarding.is_set():
                    sink.sendall(data)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of the test's own on a free port, keeping its data in ``workdir`` across restarts."""

    def __init__(self, workdir: Path) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is needed (Debian package redis-server)"
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        argv += ["--save", "3600 1", "--appendonly", "no"]  # a save point: SIGTERM writes the data set first
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _listening(self.port), 20, f"redis-server on {self.port}", interval=0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb into ``workdir``) on a free port, run as the ``postgres``
    system user (the server refuses to run as root), with trust authentication on 127.0.0.1 only."""

    workdir: Path
    port: int = 0

    def __post_init__(self) -> None:
        assert POSTGRES_BIN_DIRS, "PostgreSQL server binaries are needed (Debian package postgresql)"
        self.bin = POSTGRES_BIN_DIRS[0]
        self.port = self.port or free_port()
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True)
        self._as_postgres(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data} -c fsync=off"
        log = self.workdir / "postgres.log"
        self._as_postgres(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start"])
        wait_for(lambda: _listening(self.port), 30, f"PostgreSQL on {self.port}", interval=0.1)

    def stop(self) -> None:
        self._as_postgres(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _as_postgres(self, argv: list[str], check: bool = True) -> None:
        user = pwd.getpwnam("postgres")
        for path in (self.workdir, self.data):
            os.chown(path, user.pw_uid, user.pw_gid)
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=check, capture_output=True, timeout=120)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh cluster, stopped and deleted afterwards.  Its folder is under the system temp dir, which the
    ``postgres`` user can reach (pytest's own temp dirs are private to their owner)."""
    with tempfile.TemporaryDirectory(prefix="mlp-faults-pg-") as folder:
        workdir = Path(folder)
        workdir.chmod(0o755)
        server = PrivatePostgres(workdir)
        try:
            yield server
        finally:
            server.stop()
