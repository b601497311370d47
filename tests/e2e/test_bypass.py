"""Issue 13's bypasses, replayed as an attacker would, through every shipped
proxy config (deploy/: Envoy, Traefik, nginx, caddy), in front of the
official MCP Python SDK server with a dangerous tool behind a path-normalising
front (hostile_backend.py). Each must be refused.

One verifier, backend and proxy per proxy kind (module-scoped), the cases
parametrized over them. Requests that an HTTP client would tidy up
(dot-segments, duplicate headers, odd Host values) go out on raw sockets.
Tokens are signed here (Ed25519) and served from a JWKS on loopback, so
hostile tokens (unknown `crit`, future `iat`, overlong lifetime) can be made.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import deploy_configs
from conftest import E2E, need
from harness import LISTENING_RX, Proc, free_port, listening, toml_dumps
from test_proxies import PROXIES, start_proxy

ISS = "https://issuer.test"
KID = "k1"
# Proxies that forward the JSON-RPC body to the verifier (Envoy
# with_request_body, Traefik forwardBody): per-tool scopes from the body.
BODY_PROXIES = {"envoy", "traefik"}


class Keys:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes_raw()
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.jwks = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KID,
                                          "alg": "EdDSA", "use": "sig"}]}).encode()

    def token(self, aud: str, scope: str, *, iat: int | None = None, life: int = 600,
              headers: dict | None = None, **claims) -> str:
        now = int(time.time())
        iat = now if iat is None else iat
        body = {"iss": ISS, "sub": "alice", "aud": aud, "iat": iat, "exp": iat + life,
                "jti": f"j{time.monotonic_ns()}", "scope": scope, "client_id": "c1", **claims}
        return jwt.encode(body, self.key, algorithm="EdDSA", headers={"kid": KID, **(headers or {})})


def serve_jwks(keys: Keys) -> tuple[ThreadingHTTPServer, int]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(keys.jwks)))
            self.end_headers()
            self.wfile.write(keys.jwks)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


class Gateway:
    def __init__(self, kind: str, port: int, backend: int, resource: str, keys: Keys) -> None:
        self.kind, self.port, self.backend, self.resource, self.keys = kind, port, backend, resource, keys
        self.tools = keys.token(resource, "mcp:tools")

    def raw(self, request: bytes) -> tuple[int, bytes]:
        """Sends `request` verbatim; (status, whole response)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(request)
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if cl and len(rest) >= int(cl[0].split(b":")[1]):
                        break
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data

    def get(self, target: str, *headers: str, host: str | None = None) -> tuple[int, bytes]:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{self.port}'}", *headers,
                 "Connection: close", "", ""]
        return self.raw("\r\n".join(lines).encode())

    def post_mcp(self, body: dict | str, *headers: str) -> tuple[int, bytes]:
        b = (body if isinstance(body, str) else json.dumps(body)).encode()
        lines = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Content-Type: application/json",
                 "Accept: application/json, text/event-stream", f"Content-Length: {len(b)}", *headers,
                 "Connection: close", "", ""]
        return self.raw("\r\n".join(lines).encode() + b)

    def calls(self) -> int:
        return httpx.get(f"http://127.0.0.1:{self.backend}/calls", timeout=10).json()["delete_repo"]


@pytest.fixture(scope="module", params=PROXIES)
def gw(request, tmp_path_factory):
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"bypass-{kind}")
    logs = tmp / "logs"
    logs.mkdir()
    started: list[Proc] = []

    def spawn(name, argv, **kw) -> Proc:
        p = Proc(name, argv, logs, **kw)
        started.append(p)
        return p.start()

    keys = Keys()
    jwks, jport = serve_jwks(keys)
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    route = {"resource": resource}
    cfg = {
        "issuers": [ISS],
        "jwks_uri": f"http://127.0.0.1:{jport}/jwks",
        "routes": [
            {**route, "host": "strict.example", "path_prefix": "/", "required_scopes": ["mcp:admin"]},
            {**route, "path_prefix": "/public", "public": True},
            {**route, "path_prefix": "/admin", "required_scopes": ["mcp:admin"]},
            {**route, "path_prefix": "/mcp", "required_scopes": ["mcp:tools"],
             "tool_scopes": [{"method": "tools/call", "name": "delete_repo", "scopes": ["mcp:admin"]}]},
            {**route, "path_prefix": "/", "required_scopes": ["mcp:tools"]},
        ],
    }
    (tmp / "verifier.toml").write_text(toml_dumps(cfg))
    bin_dir = Path(__import__("os").environ.get("MCPGATE_BIN_DIR", E2E.parent.parent / "target" / "debug"))
    need((bin_dir / "verifier").is_file(), f"binary {bin_dir / 'verifier'}")
    try:
        v = spawn("verifier", [bin_dir / "verifier"], env={
            "RUST_LOG": "info", "MCPGW_LOG_FORMAT": "json",
            "MCPGW_VERIFIER_HTTP_ADDR": "127.0.0.1:0", "MCPGW_VERIFIER_GRPC_ADDR": "127.0.0.1:0",
            "MCPGW_VERIFIER_CONFIG": str(tmp / "verifier.toml"),
            "MCPGW_VERIFIER_TRUSTED_PROXIES": "127.0.0.1/32"}, ready_regex=LISTENING_RX, timeout=30)
        f = listening(v)
        backend = free_port()
        spawn("hostile-backend", [sys.executable, E2E / "hostile_backend.py", "--port", str(backend)],
              ready_port=backend, timeout=30)
        ports = deploy_configs.ports(port, f"http://{f['http']}", f"http://{f.get('grpc', '')}",
                                     f"http://127.0.0.1:{backend}")
        start_proxy(kind, spawn, tmp, ports)
        yield Gateway(kind, port, backend, resource, keys)
    finally:
        for p in reversed(started):
            p.stop()
        jwks.shutdown()


def refused(status: int, data: bytes) -> bool:
    """Not served: a 4xx, or (caddy, for a Host no site is for) an empty
    answer; never the backend's echo or the tool's result."""
    if b'"served"' in data or b"deleted" in data:
        return False
    body = data.split(b"\r\n\r\n", 1)[-1]
    return 400 <= status < 500 or (status == 200 and not body.strip())


# --- one canonical request target -------------------------------------------------

@pytest.mark.parametrize("target", [
    "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin",
    "/mcp/..%2fadmin", "/public/..%2Fadmin", "/public//../admin", "/public/..%5cadmin",
    "/public/%2e%2e%2fadmin", "/public/./../admin", "/public/../admin?x=/public",
    "/public/%aa/../../admin", "/public/%c3%2e%2e/admin", "/%ff%fe/../admin",
])
def test_dot_segments_never_reach_a_weaker_route(gw, target):
    """No token: refused, or (Envoy normalises before routing, and
    `/public//../admin` is `/public/admin` to it) the backend serves a
    public path, never `/admin`."""
    status, data = gw.get(target)
    if status == 200 and b'"served"' in data:
        assert _echo(data)["served"].startswith("/public/"), (gw.kind, target, data[:400])
        return
    assert refused(status, data), (gw.kind, target, status, data[:400])


@pytest.mark.parametrize("host", ["strict.example.", "STRICT.example", "strict.example.:80", "Strict.Example.:8080"])
def test_host_spellings_hit_the_host_route(gw, host):
    status, data = gw.get("/other", f"Authorization: Bearer {gw.tools}", host=host)
    assert refused(status, data), (gw.kind, host, status, data[:400])


def test_the_normalising_backend_serves_what_was_decided(gw):
    status, data = gw.get("/other/./x/../y", f"Authorization: Bearer {gw.tools}")
    assert status in (200, 400), (gw.kind, status, data[:300])
    if status == 200:
        assert b'"served": "/other/y"' in data, (gw.kind, data[:300])


# --- one source of truth on ForwardAuth ---------------------------------------------

@pytest.mark.parametrize("forged", [
    "X-Forwarded-Uri: /public", "X-Original-URI: /public", "X-Forwarded-Uri: /public/x",
    "X-Original-Url: /public", "X-Forwarded-Prefix: /public",
])
def test_client_target_headers_do_not_steer(gw, forged):
    status, data = gw.get("/admin", forged)
    assert refused(status, data), (gw.kind, forged, status, data[:400])


@pytest.mark.parametrize("forged", ["X-Forwarded-Host: other.example", "X-Original-Host: other.example"])
def test_client_host_headers_do_not_steer(gw, forged):
    status, data = gw.get("/other", f"Authorization: Bearer {gw.tools}", forged, host="strict.example")
    assert refused(status, data), (gw.kind, forged, status, data[:400])


# --- ambiguity is refused ----------------------------------------------------------------

@pytest.mark.parametrize("first,second", [("garbage", "tools"), ("tools", "garbage"), ("tools", "tools")])
@pytest.mark.parametrize("spelling", ["Authorization", "authorization", "AUTHORIZATION"])
def test_two_authorization_headers(gw, first, second, spelling):
    tok = {"garbage": "Bearer not.a.jwt", "tools": f"Bearer {gw.tools}"}
    status, data = gw.get("/other", f"Authorization: {tok[first]}", f"{spelling}: {tok[second]}")
    assert status in (400, 401), (gw.kind, first, second, status, data[:300])


# --- per-tool scopes for every client ---------------------------------------------------

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_repo", "arguments": {}}}
B64 = "=?base64?" + base64.b64encode(b"delete_repo").decode() + "?="


@pytest.mark.parametrize("headers", [
    ("Mcp-Method: tools/call", f"Mcp-Name: {B64}", "MCP-Protocol-Version: 2026-07-28"),
    ("Mcp-Method: tools/call", f"Mcp-Name: {B64}", "MCP-Protocol-Version: 2025-11-25"),
    ("MCP-Protocol-Version: 2025-11-25",),
    (),
    ("Mcp-Method: tools/call", "Mcp-Name: add", "MCP-Protocol-Version: 2025-11-25"),
    ("Mcp-Method: tools/list", "MCP-Protocol-Version: 2025-11-25"),
    ("Mcp-Method: tools/call", "Mcp-Name: add", "Mcp-Name: delete_repo", "MCP-Protocol-Version: 2026-07-28"),
])
def test_dangerous_tool_needs_its_scope(gw, headers):
    before = gw.calls()
    status, data = gw.post_mcp(CALL, f"Authorization: Bearer {gw.tools}", *headers)
    assert status in (400, 403), (gw.kind, headers, status, data[:400])
    assert gw.calls() == before, (gw.kind, headers)


def test_batches_and_body_decide_where_the_body_is_sent(gw):
    add = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    before = gw.calls()
    status, data = gw.post_mcp([add, CALL], f"Authorization: Bearer {gw.tools}", "MCP-Protocol-Version: 2025-11-25")
    assert status in (400, 403), (gw.kind, status, data[:300])
    assert gw.calls() == before
    # A harmless tool with an old protocol version: decided on the body
    # where the proxy sends it; elsewhere the strongest scope is needed.
    status, data = gw.post_mcp(add, f"Authorization: Bearer {gw.tools}", "MCP-Protocol-Version: 2025-11-25")
    if gw.kind in BODY_PROXIES:
        assert status == 200 and b'"result"' in data, (gw.kind, status, data[:300])
    else:
        assert status == 403, (gw.kind, status, data[:300])
    # An admin token runs the tool through every proxy.
    admin = gw.keys.token(gw.resource, "mcp:tools mcp:admin")
    status, data = gw.post_mcp(CALL, f"Authorization: Bearer {admin}", "MCP-Protocol-Version: 2025-11-25")
    assert status == 200 and b"deleted" in data, (gw.kind, status, data[:300])


# --- JWT hygiene ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["crit", "future_iat", "long_life"])
def test_hostile_tokens(gw, case):
    k, r = gw.keys, gw.resource
    tok = {
        "crit": lambda: k.token(r, "mcp:tools", headers={"crit": ["exp-ext"], "exp-ext": 1}),
        "future_iat": lambda: k.token(r, "mcp:tools", iat=int(time.time()) + 365 * 86400),
        "long_life": lambda: k.token(r, "mcp:tools", life=10 * 365 * 86400),
    }[case]()
    status, data = gw.get("/other", f"Authorization: Bearer {tok}")
    assert status == 401, (gw.kind, case, status, data[:300])
    status, _ = gw.get("/other", f"Authorization: Bearer {gw.tools}")
    assert status == 200, (gw.kind, status)


# --- no smuggled identity ------------------------------------------------------------------

def _echo(data: bytes) -> dict:
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("spelling", ["X_User_Id", "x_user_id", "X_Client_Id"])
def test_underscore_identity_headers_never_reach_the_backend(gw, spelling):
    status, data = gw.get("/other", f"Authorization: Bearer {gw.tools}", f"{spelling}: forged")
    if gw.kind == "envoy":
        assert status == 400, (gw.kind, status, data[:300])  # headers_with_underscores_action
        return
    assert status == 200, (gw.kind, status, data[:300])
    seen = _echo(data)["headers"]
    assert all("_" not in name for name in seen), (gw.kind, seen)
    assert "forged" not in json.dumps(seen), (gw.kind, seen)


def test_no_placeholder_text_upstream(gw):
    # A public route (no identity) and a token without email or name.
    for headers in [(), (f"Authorization: Bearer {gw.tools}",)]:
        target = "/public/x" if not headers else "/other"
        status, data = gw.get(target, *headers)
        assert status == 200, (gw.kind, target, status, data[:300])
        seen = _echo(data)["headers"]
        assert not any("{" in v for vs in seen.values() for v in vs), (gw.kind, seen)
        assert "x-user-email" not in seen and "x-user-name" not in seen, (gw.kind, seen)
        if headers:
            assert seen["x-user-id"] == ["alice"] and "authorization" not in seen, (gw.kind, seen)
        else:
            assert "x-user-id" not in seen, (gw.kind, seen)


def test_one_challenge_header(gw):
    r = httpx.get(f"http://127.0.0.1:{gw.port}/mcp", timeout=10)
    assert r.status_code == 401
    www = r.headers.get_list("www-authenticate")
    assert len(www) == 1 and www[0].startswith("Bearer resource_metadata="), (gw.kind, www)
