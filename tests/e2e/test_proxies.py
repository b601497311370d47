"""The deploy/ proxy examples, run for real in front of the verifier.

For each of Envoy (ext_authz gRPC), Traefik (ForwardAuth), nginx
(auth_request) and caddy (forward_auth): the very config file from deploy/
(free ports substituted, see deploy_configs.py), a real issuer minting the
token through a scripted login, the verifier binary, and a backend that
echoes the headers it receives.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

import deploy_configs
from conftest import ALICE, E2E, default_issuer_config, need
from harness import free_port, toml_dumps
from oauth import TIMEOUT, get_code, jwt_claims, register, token

REDIRECT = "http://127.0.0.1:9/callback"
IDENTITY = ("x-user-id", "x-user-name", "x-user-email", "x-user-scopes", "x-client-id")
PROXIES = ["envoy", "traefik", "nginx", "caddy"]


def _exe(name: str, *fallbacks: str) -> str:
    exe = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    need(exe is not None, name)
    return str(exe)


def start_proxy(kind: str, spawn, tmp: Path, p: deploy_configs.Ports) -> None:
    d = tmp / kind
    d.mkdir()
    if kind == "envoy":
        cfg = d / "envoy.yaml"
        cfg.write_text(deploy_configs.envoy(p))
        argv = [_exe("envoy"), "-c", cfg, "--disable-hot-restart", "--log-level", "warn"]
        spawn("envoy", argv, ready_port=p.proxy, timeout=60)
    elif kind == "traefik":
        static, dynamic = deploy_configs.traefik(p, d / "dynamic.yml")
        (d / "dynamic.yml").write_text(dynamic)
        (d / "traefik.yml").write_text(static)
        spawn("traefik", [_exe("traefik"), f"--configFile={d / 'traefik.yml'}"], cwd=d,
              ready_port=p.proxy, timeout=60)
    elif kind == "nginx":
        for sub in ("logs", "tmp"):
            (d / sub).mkdir()
        cfg = d / "nginx.conf"
        cfg.write_text(deploy_configs.nginx(p, d))
        spawn("nginx", [_exe("nginx", "/usr/sbin/nginx"), "-p", d, "-c", cfg, "-e", d / "logs" / "error.log",
                        "-g", "daemon off;"], ready_port=p.proxy, timeout=30)
    elif kind == "caddy":
        cfg = d / "Caddyfile"
        cfg.write_text(deploy_configs.caddy(p))
        env = {"XDG_DATA_HOME": str(d / "data"), "XDG_CONFIG_HOME": str(d / "config"), "HOME": str(d)}
        spawn("caddy", [_exe("caddy"), "run", "--config", cfg, "--adapter", "caddyfile"], env=env,
              ready_port=p.proxy, timeout=30)
    else:
        raise AssertionError(kind)
    # A listening port is not a loaded route table (Traefik opens its entry
    # point before the file provider's routers exist): wait for the
    # verifier's 401 on the protected path.
    deadline = time.monotonic() + 60
    while (code := httpx.get(f"http://127.0.0.1:{p.proxy}/mcp", timeout=TIMEOUT).status_code) != 401:
        assert time.monotonic() < deadline, f"{kind} never routed /mcp to the verifier (last status {code})"
        time.sleep(0.1)


def alice_token(issuer_url: str, resource: str) -> tuple[str, str]:
    """(access token, client id): a public client registered, alice's login
    scripted, the code exchanged."""
    cid = register(issuer_url, [REDIRECT], token_endpoint_auth_method="none").json()["client_id"]
    g = get_code(issuer_url, ALICE[:2], client_id=cid, redirect_uri=REDIRECT, resource=resource, scope="mcp:tools")
    tok = token(issuer_url, {"grant_type": "authorization_code", "code": g.code, "redirect_uri": REDIRECT,
                             "code_verifier": g.verifier, "client_id": cid}).json()["access_token"]
    return tok, cid


@pytest.fixture
def gateway(request, spawn, issuer, verifier, tmp_path):
    """(kind, gateway base URL, resource, access token, client id, verifier)."""
    kind = request.param
    gw = free_port()
    resource = f"http://127.0.0.1:{gw}/mcp"
    iss = issuer(default_issuer_config(resource, tmp_path))
    tok, cid = alice_token(iss.url, resource)
    vconf = tmp_path / "verifier.toml"
    vconf.write_text(toml_dumps({"routes": [{
        "resource": resource,
        "required_scopes": ["mcp:tools"],
        "tool_scopes": [{"method": "tools/call", "name": "drop_tables", "scopes": ["mcp:admin"]}],
    }]}))
    v = verifier(iss.url, None, env={"MCPGW_VERIFIER_CONFIG": str(vconf),
                                     "MCPGW_VERIFIER_TRUSTED_PROXIES": "127.0.0.1/32"})
    backend = free_port()
    spawn("echo-backend", [sys.executable, E2E / "echo_backend.py", "--port", str(backend)],
          ready_port=backend, timeout=30)
    ports = deploy_configs.ports(gw, v.http, v.grpc, f"http://127.0.0.1:{backend}")
    start_proxy(kind, spawn, tmp_path, ports)
    return kind, f"http://127.0.0.1:{gw}", resource, tok, cid, v


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=TIMEOUT)


def challenge(r: httpx.Response) -> str:
    """The one WWW-Authenticate header (a list compare: two copies joined by
    httpx would still pass a substring test)."""
    www = r.headers.get_list("www-authenticate")
    assert len(www) == 1, www
    return www[0]


@pytest.mark.parametrize("gateway", PROXIES, indirect=True)
def test_proxy_allows_denies_and_serves_metadata(gateway):
    kind, base, resource, tok, cid, _ = gateway
    prm = f"{base}/.well-known/oauth-protected-resource/mcp"

    # A valid token: through, with identity headers from the verifier, the
    # client's forged copy and its token gone.
    r = get(f"{base}/mcp", authorization=f"Bearer {tok}", **{"x-user-id": "forged", "x-user-email": "forged@evil"})
    assert r.status_code == 200, (kind, r.status_code, r.text[:300])
    seen = r.json()["headers"]
    claims = jwt_claims(tok)
    assert seen["x-user-id"] == [claims["sub"]], (kind, seen)
    assert seen["x-user-email"] == ["alice@example.com"], (kind, seen)
    assert "mcp:tools" in seen["x-user-scopes"][0], (kind, seen)
    assert seen["x-client-id"] == [cid], (kind, seen)
    assert "authorization" not in seen, (kind, seen)

    # No token: 401 pointing at the protected-resource metadata.
    r = get(f"{base}/mcp")
    assert r.status_code == 401, (kind, r.status_code)
    www = challenge(r)
    assert www.startswith("Bearer ") and f'resource_metadata="{prm}"' in www, (kind, www)
    assert "error=" not in www, (kind, www)

    # A garbage token: 401 invalid_token.
    r = get(f"{base}/mcp", authorization="Bearer not.a.jwt")
    assert r.status_code == 401, (kind, r.status_code)
    assert 'error="invalid_token"' in challenge(r), kind

    # A 12 KB token (a JWT with many claims) reaches the verifier and gets
    # its answer, not a proxy's header-size error; one over the verifier's
    # 16 KiB limit is refused the same way.
    for size in (12 * 1024, 20 * 1024):
        r = get(f"{base}/mcp", authorization=f"Bearer {'a' * size}.b.c")
        assert r.status_code == 401, (kind, size, r.status_code, r.text[:200])
        assert 'error="invalid_token"' in challenge(r), (kind, size)

    # A tool that needs a scope the token lacks: 403 insufficient_scope.
    r = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                        "params": {"name": "drop_tables", "arguments": {}}},
                   headers={"authorization": f"Bearer {tok}", "mcp-method": "tools/call",
                            "mcp-name": "drop_tables"}, timeout=TIMEOUT)
    assert r.status_code == 403, (kind, r.status_code)
    www = challenge(r)
    assert 'error="insufficient_scope"' in www and "mcp:admin" in www, (kind, www)

    # The metadata document, public, through the proxy.
    r = get(prm)
    assert r.status_code == 200, (kind, r.status_code, r.text[:200])
    doc = r.json()
    assert doc["resource"] == resource and doc["authorization_servers"], (kind, doc)

    # A browser client's preflight and the authorization server's metadata
    # at the MCP origin (the verifier's copy of the issuer's; 2025-03-26
    # clients look there), public, through the proxy.
    r = httpx.request("OPTIONS", prm, headers={"origin": "https://app.example",
                                               "access-control-request-method": "GET",
                                               "access-control-request-headers": "mcp-protocol-version"},
                      timeout=TIMEOUT)
    assert r.status_code in (200, 204), (kind, r.status_code, r.text[:200])
    assert r.headers.get("access-control-allow-origin") == "*", (kind, dict(r.headers))
    issuer_url = doc["authorization_servers"][0]
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        deadline = time.monotonic() + 10
        while True:
            r = get(f"{base}{path}", origin="https://app.example")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            assert r.status_code == 307, (kind, path, r.status_code, r.text[:200])
            time.sleep(0.1)
        assert r.status_code == 200, (kind, path, r.status_code, r.text[:200])
        assert r.json()["issuer"] == issuer_url, (kind, path)
        assert r.headers.get("access-control-allow-origin") == "*", (kind, path)


@pytest.mark.parametrize("gateway", PROXIES, indirect=True)
def test_proxy_fails_closed_without_the_verifier(gateway):
    """No verifier, no request through: a 5xx, never the backend. Envoy
    (status_on_error) and nginx (error_page) say 503."""
    kind, base, _, tok, _, v = gateway
    assert get(f"{base}/mcp", authorization=f"Bearer {tok}").status_code == 200
    v.proc.stop()
    r = get(f"{base}/mcp", authorization=f"Bearer {tok}")
    assert r.status_code >= 500, (kind, r.status_code, r.text[:200])
    if kind in ("envoy", "nginx"):
        assert r.status_code == 503, (kind, r.status_code, r.text[:200])
    assert "headers" not in r.text


def test_nginx_says_503_when_the_verifier_fails_closed(redis, spawn, issuer, verifier, nginx, tmp_path):
    """The verifier out of touch with Redis past its staleness bound answers
    503 (fail closed); nginx's auth_request would make that a 500, the
    deploy/ config passes it on as 503."""
    gw = free_port()
    resource = f"http://127.0.0.1:{gw}/mcp"
    iss = issuer(default_issuer_config(resource, tmp_path))
    tok, cid = alice_token(iss.url, resource)
    v = verifier(iss.url, resource, redis_url=redis,
                 env={"MCPGW_VERIFIER_TRUSTED_PROXIES": "127.0.0.1/32",
                      "MCPGW_VERIFIER_REVOCATION_STALENESS_SECS": "1"})
    backend = free_port()
    spawn("echo-backend", [sys.executable, E2E / "echo_backend.py", "--port", str(backend)],
          ready_port=backend, timeout=30)
    base = nginx(v.http, f"http://127.0.0.1:{backend}", port=gw)
    assert get(f"{base}/mcp", authorization=f"Bearer {tok}").status_code == 200
    redis_proc = next(p for p in spawn.started if p.name == "redis")
    redis_proc.stop()
    deadline = time.monotonic() + 15
    while (code := get(f"{base}/mcp", authorization=f"Bearer {tok}").status_code) == 200:
        assert time.monotonic() < deadline, "still allowed long after Redis went away"
        time.sleep(0.2)
    assert code == 503, code


def test_compose_file_is_valid_and_mounts_existing_files():
    """deploy/compose.yaml is not run here (no container engine); check that it
    parses, wires the services the README names, and mounts files that exist."""
    import yaml

    doc = yaml.safe_load((deploy_configs.DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert {"redis", "issuer", "verifier", "envoy", "mcp-server"} <= set(services)
    for name, svc in services.items():
        assert svc.get("network_mode") == "host", name
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (deploy_configs.DEPLOY / src).is_file(), (name, src)
    v = services["verifier"]["environment"]
    assert v["MCPGW_VERIFIER_GRPC_ADDR"].endswith(":9191") and v["MCPGW_VERIFIER_HTTP_ADDR"].endswith(":8081")
    issuer_toml = doc["configs"]["issuer"]["content"]
    assert 'kind = "redis"' in issuer_toml and v["MCPGW_VERIFIER_RESOURCE"] in issuer_toml
