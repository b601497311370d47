"""The registration and redirect shapes of the app clients people use
(README "Clients known to work"), each replayed against the issuer and then
through Envoy to a tool call. Claude Code's localhost client metadata
document is replayed in tests/it/issuer/clients.rs (its document URL must be
https)."""

from __future__ import annotations

import httpx
import pytest

from conftest import ALICE
from oauth import TIMEOUT, get_code, register, token
from test_proxies import gateway  # noqa: F401  (the fixture)

SHAPES = {
    "cursor": dict(register=["cursor://anysphere.cursor-mcp/oauth/callback"],
                   use="cursor://anysphere.cursor-mcp/oauth/callback", auth="none"),
    "vscode": dict(register=["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
                   use="http://127.0.0.1:33418/", auth="none"),
    "copilot-cli": dict(register=["http://127.0.0.1:8080/callback"],
                        use="http://127.0.0.1:51999/callback", auth="none"),
    "claude-ai-web": dict(register=["https://claude.ai/api/mcp/auth_callback"],
                          use="https://claude.ai/api/mcp/auth_callback", auth="client_secret_post"),
    "mcp-remote": dict(register=["http://localhost:3334/oauth/callback"],
                       use="http://localhost:3334/oauth/callback", auth="none"),
}


@pytest.mark.parametrize("gateway", ["envoy"], indirect=True)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_client_shape_reaches_a_tool_call(gateway, shape):
    _, base, resource, _, _, _ = gateway
    s = SHAPES[shape]
    # As the clients do: the 401 names the metadata and the scope to ask for,
    # the metadata names the issuer.
    www = httpx.get(f"{base}/mcp", timeout=TIMEOUT).headers["www-authenticate"]
    params = dict(p.strip().split("=", 1) for p in www[len("Bearer "):].split(",") if "=" in p)
    scope = params.get("scope", '""').strip('"')
    prm = httpx.get(params["resource_metadata"].strip('"'), timeout=TIMEOUT).json()
    iss = prm["authorization_servers"][0]
    r = register(iss, s["register"], token_endpoint_auth_method=s["auth"], client_name=shape)
    assert r.status_code == 201, (shape, r.text)
    c = r.json()
    g = get_code(iss, ALICE[:2], client_id=c["client_id"], redirect_uri=s["use"], resource=resource,
                 scope=scope or None)
    form = {"grant_type": "authorization_code", "code": g.code, "redirect_uri": s["use"],
            "code_verifier": g.verifier, "client_id": c["client_id"], "resource": resource}
    if s["auth"] == "client_secret_post":
        form["client_secret"] = c["client_secret"]
    t = token(iss, form)
    assert t.status_code == 200, (shape, t.text)
    tok = t.json()
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    r = httpx.post(f"{base}/mcp", json=call, timeout=TIMEOUT,
                   headers={"authorization": f"Bearer {tok['access_token']}",
                            "mcp-method": "tools/call", "mcp-name": "echo"})
    assert r.status_code == 200, (shape, r.status_code, r.text[:200])
    # And the refresh a client does an hour later.
    rf = {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "client_id": c["client_id"]}
    if s["auth"] == "client_secret_post":
        rf["client_secret"] = c["client_secret"]
    assert token(iss, rf).status_code == 200, shape
