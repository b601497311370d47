"""Upstream login through a REAL OpenID provider: npm `oidc-provider` run
with Node on a free loopback port (tests/e2e/oidc/server.js), its built-in
development interactions (login form, consent form) driven by the scripted
browser. The issuer is an OIDC relying party there (discovery, PKCE, nonce,
client_secret_basic, ID-token validation), then mints its own tokens whose
sub/email come from the OIDC account; the allow-list refuses others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_TOKEN, E2E, need
from harness import free_port
from oauth import TIMEOUT, LoginError, get_code, jwt_claims, register, token

RESOURCE = "http://127.0.0.1:1/mcp"
REDIRECT = "http://127.0.0.1:9/callback"
ACCOUNTS = {
    "alice": {"email": "alice@corp.example", "name": "Alice Corp"},
    "mallory": {"email": "mallory@evil.example", "name": "Mallory"},
    "unverified": {"email": "eve@corp.example", "name": "Eve", "email_verified": False},
}


@pytest.fixture
def oidc_setup(spawn, issuer, tmp_path: Path):
    node = shutil.which("node")
    need(node is not None, "node")
    need((E2E / "oidc" / "node_modules" / "oidc-provider").is_dir(),
         "tests/e2e/oidc/node_modules (npm ci in tests/e2e/oidc)")
    op_port, iss_port = free_port(), free_port()
    op_url = f"http://127.0.0.1:{op_port}"
    iss_url = f"http://127.0.0.1:{iss_port}"
    secret = "oidc-client-secret-0123456789"
    conf = tmp_path / "oidc.json"
    conf.write_text(json.dumps({
        "port": op_port,
        "clients": [{
            "client_id": "mcpgate-issuer",
            "client_secret": secret,
            "redirect_uris": [f"{iss_url}/callback/corp"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
        "accounts": ACCOUNTS,
    }))
    spawn("oidc-provider", [node, E2E / "oidc" / "server.js", conf], cwd=E2E / "oidc",
          ready_url=f"{op_url}/.well-known/openid-configuration", timeout=30)
    cfg = {
        "listen": f"127.0.0.1:{iss_port}",
        "issuer": iss_url,
        "admin_token": ADMIN_TOKEN,
        "scopes": ["mcp:tools"],
        "resources": [{"resource": RESOURCE}],
        "storage": {"kind": "memory"},
        "allow_list": ["@corp.example"],
        "providers": [{
            "kind": "oidc",
            "id": "corp",
            "display_name": "Corp SSO",
            "issuer": op_url,
            "client_id": "mcpgate-issuer",
        }],
    }
    # The upstream secret comes from the environment, as in production.
    iss = issuer(cfg, env={"MCPGW_ISSUER_PROVIDER_CORP_CLIENT_SECRET": secret})
    return iss, op_url


def client(iss_url: str) -> str:
    r = register(iss_url, [REDIRECT], token_endpoint_auth_method="none")
    assert r.status_code == 201, r.text
    return r.json()["client_id"]


def test_login_through_a_real_openid_provider(oidc_setup):
    iss, op_url = oidc_setup
    cid = client(iss.url)
    g = get_code(iss.url, ("alice", "any-password"), client_id=cid, redirect_uri=REDIRECT)
    r = token(iss.url, {"grant_type": "authorization_code", "code": g.code, "redirect_uri": REDIRECT,
                        "code_verifier": g.verifier, "client_id": cid})
    assert r.status_code == 200, r.text
    claims = jwt_claims(r.json()["access_token"])
    # Identity from the OpenID provider's account, namespaced by provider id.
    assert claims["sub"] == "corp:alice", claims
    assert claims["email"] == "alice@corp.example", claims
    assert claims.get("name") in (None, "Alice Corp"), claims
    assert claims["iss"] == iss.url and claims["client_id"] == cid
    # Introspection agrees.
    i = httpx.post(f"{iss.url}/introspect", data={"token": r.json()["access_token"]},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=TIMEOUT).json()
    assert i["active"] is True and i["sub"] == "corp:alice"


@pytest.mark.parametrize("login", ["mallory", "unverified"])
def test_accounts_off_the_allow_list_are_refused(oidc_setup, login):
    iss, _ = oidc_setup
    cid = client(iss.url)
    with pytest.raises(LoginError) as e:
        get_code(iss.url, (login, "any-password"), client_id=cid, redirect_uri=REDIRECT)
    assert "access_denied" in str(e.value), str(e.value)
