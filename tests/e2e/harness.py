"""Process helpers shared by the end-to-end tests (pytest, `tests/e2e`).

Everything listens on 127.0.0.1; every wait is bounded; every process a test
starts is terminated (then killed) on teardown, and its log tail is printed
when something goes wrong.

API
---
``REPO``                 the repository root (``pathlib.Path``).
``free_port()``          a free TCP port on 127.0.0.1 (bind to port 0, read it, close).
``wait_http(url, ...)``  poll ``url`` until it answers (any status < 500 unless
                         ``status=`` is given); raises ``TimeoutError``.
``wait_tcp(port, ...)``  poll until 127.0.0.1:port accepts connections.
``Proc(name, argv, log_dir, env=None, cwd=None, ready_url=None,
       ready_regex=None, ready_port=None, timeout=30)``
    A child process, used as a context manager (or ``start()``/``stop()``).
    stdout+stderr go to ``<log_dir>/<name>.log``. ``start()`` waits for
    readiness: ``ready_regex`` (searched in the log; the match is kept in
    ``proc.match``), then ``ready_url`` (HTTP poll), then ``ready_port`` (TCP
    poll). If the process exits or the wait times out, ``start()`` raises
    ``ProcError`` carrying the log tail. ``stop()`` sends SIGTERM to the
    process group, waits up to 5 s, then SIGKILLs. ``proc.log_text()``,
    ``proc.log_tail(n)``, ``proc.wait_log(regex, timeout)`` read the log.
``listening(proc)``      the fields of the ``listening`` JSON log line the
                         Rust binaries print (``{"http": "...", "grpc": ...,
                         "issuer": ...}``).
``toml_dumps(dict)``     a minimal TOML writer (str/int/float/bool, lists,
                         nested tables, arrays of tables) for issuer configs.
``argon2_hash(pw)``      an argon2id PHC string for static users.
``kill_all()``           stops every ``Proc`` still alive (atexit + session end).

Each child runs in its own process group; its pid is also appended to
``$MCPGATE_E2E_PIDFILE`` when set (``tests/run`` kills those groups on exit).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[2]

_LIVE: "set[Proc]" = set()
_LIVE_LOCK = threading.Lock()


class ProcError(RuntimeError):
    """A child process failed to start or become ready."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice in a
    session (a port handed out but not yet bound would otherwise come back)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh free port")


def wait_tcp(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def wait_http(url: str, timeout: float = 15.0, status: int | None = None) -> int:
    """Poll ``url`` until it answers (status < 500, or exactly ``status``)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback only)
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except (OSError, ValueError) as e:
            code, last = None, e
        if code is not None:
            last = code
            if (status is None and code < 500) or code == status:
                return code
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s (last: {last!r})")
        time.sleep(0.05)


class Proc:
    """A child process with a log file, readiness wait and reliable teardown."""

    def __init__(
        self,
        name: str,
        argv: Iterable[str],
        log_dir: Path | str,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        ready_url: str | None = None,
        ready_regex: str | None = None,
        ready_port: int | None = None,
        timeout: float = 30.0,
        inherit_env: bool = True,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        base = dict(os.environ) if inherit_env else {"PATH": os.environ.get("PATH", "")}
        self.env = {**base, **(env or {})}
        self.cwd = str(cwd) if cwd else None
        self.ready_url = ready_url
        self.ready_regex = ready_regex
        self.ready_port = ready_port
        self.timeout = timeout
        self.popen: subprocess.Popen[bytes] | None = None
        self.match: re.Match[str] | None = None
        self._log = None

    # --- lifecycle -------------------------------------------------------

    def __enter__(self) -> "Proc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            print(self.describe())
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab", buffering=0)
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # own process group: stop() kills children too
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        _record_pid(self.popen.pid)
        try:
            deadline = time.monotonic() + self.timeout
            if self.ready_regex:
                self.match = self.wait_log(self.ready_regex, self.timeout)
            if self.ready_url:
                self._until(deadline, lambda: _http_ok(self.ready_url), f"GET {self.ready_url}")
            if self.ready_port:
                self._until(deadline, lambda: _tcp_ok(self.ready_port), f"port {self.ready_port}")
        except BaseException as e:
            text = self.describe()
            self.stop()
            raise ProcError(f"{self.name} did not become ready: {e}\n{text}") from None
        return self

    def _until(self, deadline: float, ok, what: str) -> None:
        while not ok():
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def _check_alive(self, what: str) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcError(f"exited with {self.popen.returncode} while waiting for {what}")

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, wait, SIGKILL; returns the exit code."""
        p = self.popen
        if p is None:
            return None
        if p.poll() is None:
            _signal_group(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        else:
            _signal_group(p.pid, signal.SIGKILL)  # stray grandchildren
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._log:
            self._log.close()
            self._log = None
        return p.returncode

    # --- logs ------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def describe(self, n: int = 40) -> str:
        code = self.popen.poll() if self.popen else None
        return (
            f"--- {self.name} (pid {self.pid}, exit {code}) {' '.join(self.argv)}\n"
            f"--- last {n} lines of {self.log_path}:\n{self.log_tail(n)}\n--- end {self.name}"
        )

    def wait_log(self, regex: str, timeout: float = 15.0, start: int = 0) -> re.Match[str]:
        """Wait until ``regex`` matches the log (from character ``start``)."""
        rx = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text(), start)
            if m:
                return m
            self._check_alive(f"log /{regex}/")
            if time.monotonic() > deadline:
                raise TimeoutError(f"log of {self.name} never matched /{regex}/ in {timeout}s")
            time.sleep(0.05)


def _record_pid(pid: int) -> None:
    """Appends the pid (= process group id) to ``$MCPGATE_E2E_PIDFILE`` so
    ``tests/run`` can kill leftovers even if pytest itself is killed."""
    path = os.environ.get("MCPGATE_E2E_PIDFILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{pid}\n")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310
            return r.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (OSError, ValueError):
        return False


def _tcp_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def kill_all() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        p.stop(timeout=2)


import atexit  # noqa: E402

atexit.register(kill_all)


# --- the Rust binaries' logs ----------------------------------------------

LISTENING_RX = r'"message":"listening"|\blistening\b.*\bhttp='


def listening(proc: Proc) -> dict[str, str]:
    """Fields of the ``listening`` line (JSON logs, or text ``key=value``)."""
    for line in proc.log_text().splitlines():
        if "listening" not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            return dict(re.findall(r"(\w+)=(\S+)", line))
        fields = doc.get("fields", doc)
        if fields.get("message") == "listening":
            return {k: str(v) for k, v in fields.items() if k != "message"}
    raise ProcError(f"no listening line in {proc.log_path}\n{proc.log_tail()}")


# --- configs ----------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def toml_dumps(doc: dict[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer: scalars first, then tables, then arrays of tables."""
    out: list[str] = []
    for k, v in doc.items():
        if v is None or isinstance(v, dict) or _is_table_array(v):
            continue
        out.append(f"{k} = {_toml_value(v)}")
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.append(f"\n[{name}]")
            out.append(toml_dumps(v, f"{name}."))
        elif _is_table_array(v):
            for item in v:
                out.append(f"\n[[{name}]]")
                out.append(toml_dumps(item, f"{name}."))
    return "\n".join(x for x in out if x) + "\n"


def argon2_hash(password: str) -> str:
    """An argon2id PHC hash (cheap parameters: tests only)."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password)
