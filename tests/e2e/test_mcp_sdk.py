"""The official MCP Python SDK client against a real deployment: nginx
(auth_request) → verifier → test MCP server, tokens from the issuer binary,
revocation through a real redis-server.

The SDK does everything a real client does: 401 → protected-resource
metadata (RFC 9728) → authorization-server metadata (RFC 8414) → dynamic
registration (RFC 7591) → /authorize with PKCE S256 and `resource` → token
→ MCP calls; then a refresh. The "user" is a scripted browser that fills
the issuer's login and consent forms (no real browser)."""

from __future__ import annotations

import time

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from conftest import ALICE, default_issuer_config
from harness import free_port, toml_dumps
from oauth import TIMEOUT, Browser, get_code, jwt_claims, jwt_header, register, token

SCOPE = "mcp:tools"
REDIRECT_RAW = "http://127.0.0.1:9/callback"


class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory; keeps a history of tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class ScriptedUser:
    """redirect_handler + callback_handler: drives the issuer's HTML forms
    with httpx up to the loopback redirect_uri, then hands code + state
    (+ RFC 9207 iss) back to the SDK."""

    def __init__(self, username: str, password: str, redirect_uri: str) -> None:
        self.username, self.password, self.redirect_uri = username, password, redirect_uri
        self.result: dict[str, str] | None = None
        self.authorize_urls: list[str] = []

    async def redirect_handler(self, url: str) -> None:
        self.authorize_urls.append(url)

        def run() -> dict[str, str]:
            b = Browser(self.username, self.password)
            try:
                return b.run(url, self.redirect_uri)
            finally:
                b.close()

        self.result = await anyio.to_thread.run_sync(run)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None and "code" in self.result, self.result
        return AuthorizationCodeResult(
            code=self.result["code"], state=self.result.get("state"), iss=self.result.get("iss")
        )


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def structured(result) -> dict:
    sc = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if isinstance(sc, dict):
        return sc.get("result", sc)
    import json

    return json.loads(text_of(result))


def raw_mcp_post(url: str, bearer: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}}
    return httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)


def sdk_provider(mcp_url: str, user: "ScriptedUser", storage: "MemoryStorage") -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcpgate e2e (python sdk)",
            redirect_uris=[AnyUrl(user.redirect_uri)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )


def wait_refused(mcp_url: str, tok: str, limit: float = 1.0) -> float:
    """Polls until the gateway answers 401 for ``tok``; returns the delay."""
    t0 = time.monotonic()
    while True:
        status = raw_mcp_post(mcp_url, tok).status_code
        elapsed = time.monotonic() - t0
        if status == 401:
            return elapsed
        assert status == 200, status
        assert elapsed < limit, f"revoked token still accepted after {limit} s"
        time.sleep(0.02)


@pytest.mark.parametrize("storage_kind", ["embedded", "redis"])
def test_sdk_client_discovers_registers_authorizes_calls_refreshes_and_revocation_bites(
    redis, issuer, verifier, mcp_backend, nginx, tmp_path, storage_kind
):
    gw_port = free_port()
    gw = f"http://127.0.0.1:{gw_port}"
    mcp_url = f"{gw}/mcp"
    cfg = default_issuer_config(mcp_url, tmp_path)
    cfg["revocation"] = {"kind": "redis", "redis_urls": [redis]}
    if storage_kind == "redis":
        cfg["storage"] = {"kind": "redis", "redis_urls": [redis]}
    iss = issuer(cfg)
    # With Redis storage the verifier also runs on one core: its single-threaded runtime.
    v = verifier(iss.url, mcp_url, redis_url=redis, one_core=storage_kind == "redis",
                 env={"MCPGW_VERIFIER_REQUIRED_SCOPES": SCOPE, "MCPGW_VERIFIER_RESOURCE_NAME": "e2e MCP"})
    nginx(v.http, mcp_backend.url, port=gw_port)

    # --- no token: 401 with the RFC 9728 pointer, and the metadata is served.
    r = raw_mcp_post(mcp_url, None)
    assert r.status_code == 401, r.text
    www = r.headers.get("www-authenticate", "")
    prm_url = f"{gw}/.well-known/oauth-protected-resource/mcp"
    assert www.startswith("Bearer ") and f'resource_metadata="{prm_url}"' in www, www
    assert f'scope="{SCOPE}"' in www, www
    prm = httpx.get(prm_url, timeout=TIMEOUT).json()
    assert prm["resource"] == mcp_url
    assert [s.rstrip("/") for s in prm["authorization_servers"]] == [iss.url]
    assert SCOPE in prm.get("scopes_supported", [])
    # A garbage token is refused the same way, with error="invalid_token".
    r = raw_mcp_post(mcp_url, "not-a-jwt")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers.get("www-authenticate", "")

    # --- the SDK does the whole dance.
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    storage = MemoryStorage()
    user = ScriptedUser(ALICE[0], ALICE[1], redirect_uri)
    provider = sdk_provider(mcp_url, user, storage)

    async def session() -> dict:
        out: dict = {}
        async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(20.0)) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                tools = await client.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
                out["sum"] = text_of(await client.call_tool("add", {"a": 2, "b": 40}))
                out["who"] = structured(await client.call_tool("whoami", {}))
                # Force a refresh: the stored access token is now "expired".
                provider.context.token_expiry_time = time.time() - 1
                out["who2"] = structured(await client.call_tool("whoami", {}))
                out["sum2"] = text_of(await client.call_tool("add", {"a": 1, "b": 1}))
        return out

    out = anyio.run(session)

    assert out["tools"] == ["add", "whoami"], out
    assert out["sum"] == "42" and out["sum2"] == "2", out
    # Registration happened (DCR) and the authorize request was MCP-correct.
    assert storage.client is not None and storage.client.client_id
    assert len(user.authorize_urls) == 1, user.authorize_urls
    az = httpx.URL(user.authorize_urls[0])
    assert str(az).startswith(f"{iss.url}/authorize?")
    assert az.params["code_challenge_method"] == "S256"
    assert az.params["resource"] == mcp_url
    assert az.params["scope"] == SCOPE
    assert user.result and user.result.get("iss") == iss.url  # RFC 9207

    # The backend saw the identity, never the token.
    who = out["who"]
    assert who["email"] == ALICE[2] and who["user_id"], who
    assert who["client_id"] == storage.client.client_id
    assert SCOPE in (who["scopes"] or ""), who
    assert who["authorization_forwarded"] is False, who

    # Tokens: RFC 9068 JWT for this resource; the refresh rotated both tokens.
    assert len(storage.history) == 2, [t.access_token[:12] for t in storage.history]
    first, second = storage.history
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert out["who2"]["user_id"] == who["user_id"]
    claims = jwt_claims(second.access_token)
    assert jwt_header(second.access_token)["typ"].lower() in ("at+jwt", "application/at+jwt")
    assert claims["iss"] == iss.url and claims["aud"] in (mcp_url, [mcp_url])
    assert claims["client_id"] == storage.client.client_id
    assert claims["sub"] == who["user_id"]
    assert SCOPE in claims["scope"].split()

    # --- revocation: POST /revoke, and the verifier refuses within 1 s.
    tok = second.access_token
    assert raw_mcp_post(mcp_url, tok).status_code == 200
    rv = httpx.post(f"{iss.url}/revoke", data={"token": tok, "token_type_hint": "access_token",
                                               "client_id": storage.client.client_id}, timeout=TIMEOUT)
    assert rv.status_code == 200, rv.text
    assert wait_refused(mcp_url, tok) < 1.0
    # Only that jti was revoked: the refresh token still works.
    cid = storage.client.client_id
    r = httpx.post(f"{iss.url}/token", data={"grant_type": "refresh_token",
                                             "refresh_token": second.refresh_token,
                                             "client_id": cid}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    third = r.json()
    assert raw_mcp_post(mcp_url, third["access_token"]).status_code == 200
    # Revoking the refresh token revokes its family, access tokens included.
    rv = httpx.post(f"{iss.url}/revoke", data={"token": third["refresh_token"], "client_id": cid},
                    timeout=TIMEOUT)
    assert rv.status_code == 200, rv.text
    assert wait_refused(mcp_url, third["access_token"]) < 1.0
    r = httpx.post(f"{iss.url}/token", data={"grant_type": "refresh_token",
                                             "refresh_token": third["refresh_token"],
                                             "client_id": cid}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_sdk_steps_up_on_insufficient_scope(issuer, verifier, mcp_backend, nginx, tmp_path):
    """A per-tool scope (Mcp-Method/Mcp-Name headers): the verifier answers
    403 insufficient_scope with scope=, and the SDK re-authorizes for the
    union of scopes, then the call goes through."""
    gw_port = free_port()
    mcp_url = f"http://127.0.0.1:{gw_port}/mcp"
    cfg = default_issuer_config(mcp_url, tmp_path)
    cfg["scopes"] = ["mcp:tools", "mcp:admin"]
    iss = issuer(cfg)
    vconf = tmp_path / "verifier.toml"
    vconf.write_text(toml_dumps({"routes": [{
        "resource": mcp_url,
        "required_scopes": ["mcp:tools"],
        "tool_scopes": [{"method": "tools/call", "name": "whoami", "scopes": ["mcp:admin"]}],
    }]}))
    v = verifier(iss.url, None, env={"MCPGW_VERIFIER_CONFIG": str(vconf)})
    nginx(v.http, mcp_backend.url, port=gw_port)

    storage = MemoryStorage()
    user = ScriptedUser(ALICE[0], ALICE[1], f"http://127.0.0.1:{free_port()}/callback")
    provider = sdk_provider(mcp_url, user, storage)

    async def session() -> dict:
        out: dict = {}
        async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(20.0)) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                out["sum"] = text_of(await client.call_tool("add", {"a": 1, "b": 2}))
                out["scope1"] = storage.tokens.scope if storage.tokens else None
                out["who"] = structured(await client.call_tool("whoami", {}))
        return out

    # The verifier's half of step-up, checked raw: a token with only
    # mcp:tools may list tools but not call whoami (403 + challenge).
    g = get_code(iss.url, ALICE[:2], client_id=register(iss.url, [REDIRECT_RAW], token_endpoint_auth_method="none").json()["client_id"],
                 redirect_uri=REDIRECT_RAW, resource=mcp_url, scope="mcp:tools")
    tok = token(iss.url, {"grant_type": "authorization_code", "code": g.code, "redirect_uri": REDIRECT_RAW,
                          "code_verifier": g.verifier, "client_id": g.client_id}).json()["access_token"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    hdrs = {"Authorization": f"Bearer {tok}", "Accept": "application/json, text/event-stream",
            "Mcp-Method": "tools/call", "Mcp-Name": "whoami"}
    r = httpx.post(mcp_url, json=call, headers=hdrs, timeout=TIMEOUT)
    assert r.status_code == 403, (r.status_code, r.text[:200])
    www = r.headers.get("www-authenticate", "")
    assert 'error="insufficient_scope"' in www and "mcp:admin" in www and "resource_metadata=" in www, www

    out = anyio.run(session)
    assert out["sum"] == "3"
    assert out["scope1"] and out["scope1"].split() == ["mcp:tools"], out
    assert len(user.authorize_urls) == 2, user.authorize_urls
    second = httpx.URL(user.authorize_urls[1]).params["scope"].split()
    assert sorted(second) == ["mcp:admin", "mcp:tools"], second
    assert sorted(out["who"]["scopes"].replace(",", " ").split()) == ["mcp:admin", "mcp:tools"], out
    assert sorted(jwt_claims(storage.tokens.access_token)["scope"].split()) == ["mcp:admin", "mcp:tools"]
