"""The verifier in front of another authorization server: a real OpenID
provider (npm `oidc-provider`, tests/e2e/oidc/token_server.js) mints JWT
access tokens shaped like Entra ID's or Okta's (`scp` as an array, `azp`,
`roles`), and the verifier reads them through `[[issuer_claims]]`."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from conftest import E2E, need
from harness import free_port, toml_dumps
from oauth import TIMEOUT, jwt_claims

RESOURCE = "http://mcp.test/mcp"


@pytest.fixture
def provider(spawn, tmp_path):
    node = shutil.which("node")
    need(node is not None, "node")
    need((E2E / "oidc" / "node_modules" / "oidc-provider").is_dir(),
         "tests/e2e/oidc/node_modules (npm ci in tests/e2e/oidc)")
    port = free_port()
    conf = tmp_path / "token-server.json"
    conf.write_text(json.dumps({
        "port": port,
        "resource": RESOURCE,
        "scope": "api:default",
        "extra": {"scp": ["mcp:read"], "roles": ["MCP.Admins", "Other"], "azp": "corp-app"},
        "clients": [{
            "client_id": "corp-app",
            "client_secret": "corp-secret-0123456789",
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
    }))
    url = f"http://127.0.0.1:{port}"
    spawn("token-server", [node, E2E / "oidc" / "token_server.js", conf], cwd=E2E / "oidc",
          ready_url=f"{url}/.well-known/openid-configuration", timeout=30)
    r = httpx.post(f"{url}/token", data={"grant_type": "client_credentials", "resource": RESOURCE,
                                          "scope": "api:default"},
                   auth=("corp-app", "corp-secret-0123456789"), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return url, r.json()["access_token"]


def decide(v, tok: str) -> httpx.Response:
    return httpx.get(f"{v.http}/auth", headers={
        "authorization": f"Bearer {tok}", "x-forwarded-method": "POST", "x-forwarded-proto": "http",
        "x-forwarded-host": "mcp.test", "x-forwarded-uri": "/mcp"}, timeout=TIMEOUT)


def test_verifier_reads_a_third_party_providers_token_through_its_claim_mapping(provider, verifier, tmp_path):
    url, tok = provider
    claims = jwt_claims(tok)
    assert claims["iss"] == url and claims["aud"] == RESOURCE, claims
    assert claims["scp"] == ["mcp:read"] and claims["scope"] == "api:default", claims

    route = {"resource": RESOURCE, "required_scopes": ["mcp:read", "mcp:admin"]}
    mapped = tmp_path / "mapped.toml"
    # Written by hand: the role name has a dot, so its key must be quoted.
    mapped.write_text(f"""
[[issuer_claims]]
issuer = "{url}"
scope_claims = ["scp"]
client_id_claims = ["azp"]
role_scopes = {{ "MCP.Admins" = ["mcp:admin"] }}
""" + toml_dumps({"routes": [route]}))
    v = verifier(url, None, env={"MCPGW_VERIFIER_CONFIG": str(mapped)}, name="mapped")
    r = decide(v, tok)
    assert r.status_code == 200, (r.status_code, r.headers.get("www-authenticate"))
    assert r.headers["x-client-id"] == "corp-app"
    assert set(r.headers["x-user-scopes"].split(" ")) == {"mcp:read", "mcp:admin"}, r.headers

    # Without the mapping the same token has only `scope`: 403.
    plain = tmp_path / "plain.toml"
    plain.write_text(toml_dumps({"routes": [route]}))
    v2 = verifier(url, None, env={"MCPGW_VERIFIER_CONFIG": str(plain)}, name="plain")
    r = decide(v2, tok)
    assert r.status_code == 403, r.status_code
    assert 'error="insufficient_scope"' in r.headers.get("www-authenticate", "")
