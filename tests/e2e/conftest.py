"""Fixtures of the end-to-end tests. Every server is a real process on a free
127.0.0.1 port, started by the fixture and stopped at teardown (see
``harness.py``).

Fixtures
--------
``bins``          paths of the Rust binaries: ``bins.verifier``, ``bins.issuer``,
                  ``bins.mcpgate`` (dir from ``MCPGATE_BIN_DIR``, default
                  ``<repo>/target/debug``).
``spawn``         ``spawn(name, argv, **Proc kwargs) -> Proc``: starts a process
                  whose log lands in this test's log dir; stopped at teardown,
                  log tails printed if the test failed.
``logdir``        this test's log directory.
``redis``         a fresh ``redis-server`` (no persistence); yields its URL.
``issuer``        factory ``issuer(config: dict | None = None, *, resource=...,
                  users=..., env=None, name="issuer") -> IssuerHandle`` (``.url``,
                  ``.port``, ``.proc``, ``.config``, ``.config_path``,
                  ``.restart()``). Missing ``listen``/``issuer`` get a free port.
                  Default config: static provider with user ``alice`` /
                  ``alice-pw`` (email alice@example.com), admin token
                  ``ADMIN_TOKEN``, embedded store in the tmp dir.
``verifier``      factory ``verifier(issuer_url, resource, *, redis_url=None,
                  env=None) -> VerifierHandle`` (``.http`` base URL,
                  ``.grpc`` ``host:port``, ``.proc``); ports chosen by the binary.
``mcp_backend``   the test MCP server (``mcp_server.py``, no auth); yields
                  ``BackendHandle`` (``.url`` base, ``.mcp_url`` = ``<url>/mcp``).
``nginx``         factory ``nginx(verifier_http, backend_url, port=None) -> str``:
                  deploy/nginx/nginx.conf (auth_request → verifier, proxy →
                  backend) on free ports; returns its base URL.

OAuth helpers for tests live in ``oauth.py``: ``pkce()``, ``register()``,
``token()``, ``authorize_url()``, ``get_code()`` (full /authorize → login →
consent with a scripted ``Browser``), ``jwt_claims()``.

Prerequisites that are missing (binaries, redis-server, nginx, node modules)
skip the tests that need them, unless ``MCPGATE_E2E_STRICT=1`` (set by
``tests/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import deploy_configs  # noqa: E402
from harness import (  # noqa: E402
    LISTENING_RX,
    REPO,
    Proc,
    argon2_hash,
    free_port,
    kill_all,
    listening,
    toml_dumps,
)

E2E = Path(__file__).resolve().parent
STRICT = os.environ.get("MCPGATE_E2E_STRICT") == "1"
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
ALICE = ("alice", "alice-pw", "alice@example.com")
BOB = ("bob", "bob-pw", "bob@example.com")


def need(ok: bool, what: str) -> None:
    """Skip (or fail, in strict mode) when a prerequisite is missing."""
    if not ok:
        (pytest.fail if STRICT else pytest.skip)(f"prerequisite missing: {what}")


# --- reporting --------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_sessionfinish(session, exitstatus):
    kill_all()


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    setup = getattr(request.node, "rep_setup", None)
    return bool((rep and rep.failed) or (setup and setup.failed))


# --- generic ----------------------------------------------------------------


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture
def spawn(request, logdir: Path):
    started: list[Proc] = []

    def _spawn(name: str, argv, **kw) -> Proc:
        p = Proc(name, argv, logdir, **kw)
        started.append(p)
        return p.start()

    _spawn.started = started  # type: ignore[attr-defined]  (tests that stop one, e.g. Redis)
    yield _spawn
    failed = _failed(request)
    for p in reversed(started):
        if failed:
            print(p.describe(60))
        p.stop()


@dataclass
class Bins:
    dir: Path

    def path(self, name: str) -> Path:
        p = self.dir / name
        need(p.is_file() and os.access(p, os.X_OK), f"binary {p} (cargo build --all-features --bins)")
        return p

    @property
    def verifier(self) -> Path:
        return self.path("verifier")

    @property
    def issuer(self) -> Path:
        return self.path("issuer")

    @property
    def mcpgate(self) -> Path:
        return self.path("mcpgate")


@pytest.fixture(scope="session")
def bins() -> Bins:
    return Bins(Path(os.environ.get("MCPGATE_BIN_DIR", REPO / "target" / "debug")))


# --- redis ------------------------------------------------------------------


@pytest.fixture
def redis(spawn, tmp_path: Path) -> str:
    exe = shutil.which("redis-server")
    need(exe is not None, "redis-server")
    port = free_port()
    d = tmp_path / "redis"
    d.mkdir()
    spawn(
        "redis",
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(d), "--protected-mode", "yes"],
        ready_port=port,
        timeout=15,
    )
    return f"redis://127.0.0.1:{port}"


# --- issuer -----------------------------------------------------------------


def static_user(username: str, password: str, email: str | None = None, name: str | None = None) -> dict:
    u = {"username": username, "password_hash": argon2_hash(password)}
    if email:
        u["email"] = email
    if name:
        u["name"] = name
    return u


def default_issuer_config(resource: str, tmp: Path, users: list[tuple] | None = None) -> dict[str, Any]:
    users = users if users is not None else [ALICE, BOB]
    return {
        "admin_token": ADMIN_TOKEN,
        "scopes": ["mcp:tools", "mcp:read"],
        "resources": [{"resource": resource}],
        "storage": {"kind": "embedded", "path": str(tmp / "issuer.redb")},
        "providers": [
            {"kind": "static", "users": [static_user(*u) for u in users]},
        ],
    }


@dataclass
class IssuerHandle:
    url: str
    port: int
    proc: Proc
    config: dict[str, Any]
    config_path: Path
    #: The admin API and /metrics listener (``admin_listen``).
    admin_url: str = ""
    restart: Callable[[], "IssuerHandle"] = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.get('admin_token', ADMIN_TOKEN)}"}


@pytest.fixture
def issuer(spawn, bins: Bins, tmp_path: Path):
    counter = [0]

    def _issuer(
        config: dict[str, Any] | None = None,
        *,
        resource: str = "http://127.0.0.1:1/mcp",
        users: list[tuple] | None = None,
        env: dict[str, str] | None = None,
        name: str = "issuer",
    ) -> IssuerHandle:
        counter[0] += 1
        cfg = dict(config) if config is not None else default_issuer_config(resource, tmp_path, users)
        port = free_port()
        if "listen" not in cfg:
            cfg["listen"] = f"127.0.0.1:{port}"
        else:
            port = int(cfg["listen"].rsplit(":", 1)[1])
        cfg.setdefault("issuer", f"http://127.0.0.1:{port}")
        # The admin API and /metrics listener (its default port is fixed).
        cfg.setdefault("admin_listen", f"127.0.0.1:{free_port()}")
        path = tmp_path / f"{name}-{counter[0]}.toml"
        path.write_text(toml_dumps(cfg))
        exe = bins.issuer

        def start(n: str) -> Proc:
            return spawn(
                n,
                [exe, "--config", path],
                env={"RUST_LOG": "info", "MCPGW_LOG_FORMAT": "json", **(env or {})},
                ready_regex=LISTENING_RX,
                ready_url=f"http://127.0.0.1:{port}/healthz",
                timeout=30,
            )

        proc = start(f"{name}-{counter[0]}")
        h = IssuerHandle(url=cfg["issuer"], port=port, proc=proc, config=cfg, config_path=path,
                         admin_url=f"http://{cfg['admin_listen']}")
        restarts = [0]

        def restart() -> IssuerHandle:
            h.proc.stop()
            restarts[0] += 1
            h.proc = start(f"{name}-{counter[0]}-r{restarts[0]}")
            return h

        h.restart = restart
        return h

    return _issuer


# --- verifier ---------------------------------------------------------------


@dataclass
class VerifierHandle:
    http: str
    grpc: str
    proc: Proc
    #: The /metrics listener (``metrics_addr``).
    metrics: str = ""


@pytest.fixture
def verifier(spawn, bins: Bins):
    counter = [0]

    def _verifier(
        issuer_url: str,
        resource: str | None = None,
        *,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
        name: str = "verifier",
        one_core: bool = False,
    ) -> VerifierHandle:
        """one_core: run under `taskset -c 0`, where the verifier picks its
        single-threaded runtime (as under a 1-CPU limit)."""
        counter[0] += 1
        e = {
            "RUST_LOG": "info",
            "MCPGW_LOG_FORMAT": "json",
            "MCPGW_VERIFIER_HTTP_ADDR": "127.0.0.1:0",
            "MCPGW_VERIFIER_GRPC_ADDR": "127.0.0.1:0",
            "MCPGW_VERIFIER_METRICS_ADDR": "127.0.0.1:0",
            "MCPGW_VERIFIER_ISSUERS": issuer_url,
        }
        if resource:
            e["MCPGW_VERIFIER_RESOURCE"] = resource
        if redis_url:
            e["MCPGW_VERIFIER_REDIS_URL"] = redis_url
        e.update(env or {})
        argv = [bins.verifier]
        if one_core:
            need(shutil.which("taskset") is not None, "taskset (util-linux)")
            argv = ["taskset", "-c", "0", bins.verifier]
        proc = spawn(f"{name}-{counter[0]}", argv, env=e, ready_regex=LISTENING_RX, timeout=30)
        f = listening(proc)
        return VerifierHandle(http=f"http://{f['http']}", grpc=f.get("grpc", ""), proc=proc,
                              metrics=f"http://{f['metrics']}" if f.get("metrics") else "")

    return _verifier


# --- MCP backend ------------------------------------------------------------


@dataclass
class BackendHandle:
    url: str
    proc: Proc

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@pytest.fixture
def mcp_backend(spawn) -> BackendHandle:
    port = free_port()
    proc = spawn(
        "mcp-backend",
        [sys.executable, E2E / "mcp_server.py", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/healthz",
        timeout=30,
    )
    return BackendHandle(url=f"http://127.0.0.1:{port}", proc=proc)


# --- nginx ------------------------------------------------------------------


@pytest.fixture
def nginx(spawn, tmp_path: Path):
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

    def _nginx(verifier_http: str, backend_url: str, port: int | None = None) -> str:
        need(exe is not None, "nginx")
        port = port or free_port()
        prefix = tmp_path / f"nginx-{port}"
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = deploy_configs.nginx(deploy_configs.ports(port, verifier_http, "", backend_url), prefix)
        path = prefix / "nginx.conf"
        path.write_text(conf)
        spawn(
            f"nginx-{port}",
            [exe, "-p", prefix, "-c", path, "-e", prefix / "logs" / "error.log", "-g", "daemon off;"],
            ready_port=port,
            timeout=15,
        )
        return f"http://127.0.0.1:{port}"

    return _nginx
