"""A small process supervisor for the embedded stack's long-running servers.

Each managed process runs in its own session (so its whole process group can be signalled at once), appends its
stdout and stderr to ``<state_dir>/logs/<name>.log`` and is remembered in ``<state_dir>/run/<name>.pid``.  The pid
file also records the process start time: after a reboot (or once the pid has been reused) the recorded pid may
belong to an unrelated process, and comparing start times is what stops us from signalling it by mistake.

Nothing here is specific to MLflow or Airflow; ``mlplatform.stack.embedded`` decides what to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from mlplatform.state import StateLayout, write_private
from mlplatform.waiting import WaitTimeoutError, wait_until

# Start times come from /proc in clock ticks; two reads of the same process agree exactly, but keep a margin.
_START_TIME_TOLERANCE_S = 0.05
LOG_TAIL_LINES = 20
# How often a stop looks again whether the processes it signalled have ended.
STOP_POLL_S = 0.1


class SupervisorError(RuntimeError):
    """A managed process could not be started, stopped or did not become healthy."""


class HealthTimeoutError(SupervisorError):
    """A process did not answer its health URL in time; the message carries the tail of its log."""


@dataclass(frozen=True)
class ManagedStatus:
    """What the supervisor knows about one named process."""

    name: str
    running: bool
    pid: int | None
    log_path: Path
    stale_pidfile: bool = False


@dataclass(frozen=True)
class _PidRecord:
    """Contents of a pid file: enough to recognise the exact process we started."""

    pid: int
    create_time: float
    argv: list[str]

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "create_time": self.create_time, "argv": self.argv})

    @classmethod
    def from_json(cls, text: str) -> _PidRecord:
        data = json.loads(text)
        return cls(pid=int(data["pid"]), create_time=float(data["create_time"]), argv=list(data.get("argv", [])))


class Supervisor:
    """Starts, inspects and stops named processes whose state lives under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.layout = StateLayout(state_dir)

    # -- paths -----------------------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        """Where the named process's stdout and stderr are appended."""
        return self.layout.log_file(name)

    def pid_path(self, name: str) -> Path:
        """Where the named process's pid record is kept while it runs (0600: it reveals what we run)."""
        return self.layout.pid_file(name)

    def names(self) -> list[str]:
        """Every name with a pid record (running or stale): what ``stop`` may have to act on."""
        if not self.layout.run_dir.is_dir():
            return []
        return sorted(path.stem for path in self.layout.run_dir.glob("*.pid"))

    # -- start -----------------------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> ManagedStatus:
        """Start ``argv`` as ``name`` in a new session; refuses if a live process already holds that name.

        ``argv`` is written to the log and the pid file, so it must never contain secrets (pass them in files or
        the environment instead).
        """
        current = self.status(name)
        if current.running:
            raise SupervisorError(f"{name} is already running (pid {current.pid}); stop it first")
        self._clear_stale(name)
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        if cwd is not None:
            cwd.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(name)
        with log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} starting {name}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise SupervisorError(f"could not start {name} ({argv[0]}): {error}") from error
        record = _PidRecord(pid=process.pid, create_time=psutil.Process(process.pid).create_time(), argv=list(argv))
        write_private(self.pid_path(name), record.to_json())
        return ManagedStatus(name=name, running=True, pid=process.pid, log_path=log_path)

    # -- status ----------------------------------------------------------------------------------------------

    def status(self, name: str) -> ManagedStatus:
        """Whether ``name`` runs: its pid file names a live process with the recorded start time."""
        record = self._read_record(name)
        log_path = self.log_path(name)
        if record is None:
            return ManagedStatus(name=name, running=False, pid=None, log_path=log_path)
        process = _matching_process(record)
        if process is None:
            return ManagedStatus(name=name, running=False, pid=record.pid, log_path=log_path, stale_pidfile=True)
        return ManagedStatus(name=name, running=True, pid=record.pid, log_path=log_path)

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the named process's log ('' if it has none)."""
        path = self.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- stop ------------------------------------------------------------------------------------------------

    def stop(self, name: str, timeout: float = 20.0) -> list[int]:
        """Stop the named process with its whole process group and descendants; drop the pid file.

        The leader alone gets SIGTERM first, for a share of ``timeout``: servers that manage worker processes
        (Airflow's scheduler and its LocalExecutor workers) shut them down cleanly themselves, whereas a SIGTERM
        that reaches the workers at the same moment can leave the scheduler waiting on them forever.  Then the
        whole group (and any descendant that left it) gets SIGTERM, and finally SIGKILL.

        Returns the pids still alive after SIGKILL (normally none) so callers can report them.
        """
        record = self._read_record(name)
        if record is None:
            return []
        targets = _targets(record)
        alive = list(targets)
        leader = [process for process in targets if process.pid == record.pid]
        if leader and alive:
            with contextlib.suppress(psutil.Error):
                leader[0].send_signal(signal.SIGTERM)
            alive = _wait_gone(alive, timeout * 0.6)
        for sig, wait_s in ((signal.SIGTERM, timeout * 0.4), (signal.SIGKILL, 5.0)):
            if not alive:
                break
            _signal_all(record.pid, alive, sig)
            alive = _wait_gone(alive, wait_s)
        self.pid_path(name).unlink(missing_ok=True)
        return [process.pid for process in alive if _is_alive(process)]

    # -- health ----------------------------------------------------------------------------------------------

    def wait_healthy(
        self,
        name: str,
        url: str,
        timeout: float = 60.0,
        interval: float = 0.5,
        accept: Callable[[httpx.Response], bool] | None = None,
    ) -> None:
        """Poll ``url`` until it answers 200 (and ``accept`` agrees); fail fast if the process dies.

        On failure the error quotes the last lines of the process's log, which is nearly always where the reason
        is (a port in use, a bad backend URI, a failed migration).
        """
        last_problem = "no answer yet"
        with httpx.Client(timeout=min(5.0, max(interval, 1.0))) as client:

            def healthy() -> bool:
                nonlocal last_problem
                last_problem = _probe(client, url, accept)
                if last_problem and not self.status(name).running:
                    raise HealthTimeoutError(self._health_message(name, url, "the process exited", last_problem))
                return not last_problem

            try:
                wait_until(healthy, timeout=timeout, interval=interval, what=f"{name} at {url}")
            except WaitTimeoutError:
                what = f"no healthy answer within {timeout:.0f}s"
                raise HealthTimeoutError(self._health_message(name, url, what, last_problem)) from None

    def _health_message(self, name: str, url: str, what: str, last_problem: str) -> str:
        tail = self.log_tail(name) or "(log is empty)"
        return (
            f"{name} did not become healthy at {url}: {what} (last check: {last_problem}).\n"
            f"Last lines of {self.log_path(name)}:\n{tail}"
        )

    # -- internals -------------------------------------------------------------------------------------------

    def _read_record(self, name: str) -> _PidRecord | None:
        path = self.pid_path(name)
        try:
            return _PidRecord.from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A corrupt pid file cannot identify a process; treat it as stale rather than guessing.
            return _PidRecord(pid=-1, create_time=0.0, argv=[])

    def _clear_stale(self, name: str) -> None:
        """Remove a pid file whose process is gone, after reaping any orphans left in its group."""
        if self._read_record(name) is not None:
            self.stop(name)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _probe(client: httpx.Client, url: str, accept: Callable[[httpx.Response], bool] | None) -> str:
    """One health check; returns '' when healthy, otherwise what was wrong."""
    try:
        response = client.get(url)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if accept is not None and not accept(response):
        return f"not ready yet: {response.text[:200]}"
    return ""


def _recorded_process(record: _PidRecord) -> psutil.Process | None:
    """The process the record describes (possibly a zombie), or None if the pid is free or someone else's."""
    if record.pid <= 0:
        return None
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.create_time) > _START_TIME_TOLERANCE_S:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return process


def _matching_process(record: _PidRecord) -> psutil.Process | None:
    """The live (not zombie) process the record describes, or None."""
    process = _recorded_process(record)
    if process is None or not _is_alive(process):
        return None
    return process


def _targets(record: _PidRecord) -> list[psutil.Process]:
    """Every process to stop: the leader, its process group, and descendants that moved to their own group.

    If the leader is gone but its pid is held by a *different* process, the kernel cannot have reused the pid
    while our group still existed, so there is nothing of ours left and nothing is returned.  If no process has
    the pid at all, members of the group (pgid == recorded pid) are orphans of ours.
    """
    if record.pid <= 0:
        return []
    leader = _recorded_process(record)
    if leader is None and psutil.pid_exists(record.pid):
        return []
    found: dict[int, psutil.Process] = {}
    if leader is not None:
        found[leader.pid] = leader
        with contextlib.suppress(psutil.Error):
            for child in leader.children(recursive=True):
                found[child.pid] = child
    for process in _group_members(record.pid):
        found.setdefault(process.pid, process)
        with contextlib.suppress(psutil.Error):
            for child in process.children(recursive=True):
                found.setdefault(child.pid, child)
    return list(found.values())


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def _signal_all(pgid: int, processes: Sequence[psutil.Process], sig: signal.Signals) -> None:
    """Signal the group in one call, then each process individually (covers those that left the group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for the processes to end; return those still alive.

    A process that has exited but whose parent has not reaped it yet (a model server started by the API process
    and stopped by the CLI) is a zombie: it holds no port and runs no code, so it counts as gone.  psutil's own
    ``wait_procs`` would wait the whole timeout for it and then escalate to signals that cannot reach it.
    """
    deadline = time.monotonic() + timeout
    while True:
        psutil.wait_procs(processes, timeout=0)  # reaps those that are this process's own children
        alive = [process for process in processes if _is_alive(process)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(STOP_POLL_S)


def _is_alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
