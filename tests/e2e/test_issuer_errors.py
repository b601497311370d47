"""Negative cases against the running issuer binary, at the HTTP level: each
bad request gets the right RFC error and changes nothing it should not
(the good request still works afterwards), while replays revoke what the
replayed credential produced."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from conftest import ADMIN_TOKEN, ALICE, default_issuer_config
from oauth import TIMEOUT, Browser, authorize_url, get_code, pkce, register, token

RESOURCE = "http://127.0.0.1:1/mcp"
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def iss(issuer):
    return issuer(resource=RESOURCE)


def public_client(iss_url: str, redirect: str = REDIRECT) -> dict:
    r = register(iss_url, [redirect], token_endpoint_auth_method="none",
                 grant_types=["authorization_code", "refresh_token"])
    assert r.status_code == 201, r.text
    return r.json()


def confidential_client(iss_url: str) -> dict:
    r = register(iss_url, [REDIRECT], token_endpoint_auth_method="client_secret_basic",
                 grant_types=["authorization_code", "refresh_token"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body.get("client_secret"), body
    return body


def code_request(g, **over) -> dict:
    d = {
        "grant_type": "authorization_code",
        "code": g.code,
        "redirect_uri": g.redirect_uri,
        "code_verifier": g.verifier,
        "client_id": g.client_id,
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def assert_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"] == error, r.text
    assert "no-store" in r.headers.get("cache-control", "")


def introspect(iss_url: str, tok: str) -> dict:
    r = httpx.post(f"{iss_url}/introspect", data={"token": tok},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def redirect_query(iss_url: str, **params) -> dict:
    """GET /authorize without following: the error redirect's query."""
    from urllib.parse import parse_qs, urlparse

    r = httpx.get(authorize_url(iss_url, **params), follow_redirects=False, timeout=TIMEOUT)
    assert r.status_code in (302, 303), (r.status_code, r.text[:300])
    loc = r.headers["location"]
    assert loc.startswith(params["redirect_uri"]), loc
    return {k: v[0] for k, v in parse_qs(urlparse(loc).query).items()}


# --- /authorize -------------------------------------------------------------


def test_authorize_without_pkce_is_invalid_request(iss):
    c = public_client(iss.url)
    q = redirect_query(iss.url, response_type="code", client_id=c["client_id"],
                       redirect_uri=REDIRECT, state="s1")
    assert q["error"] == "invalid_request" and q["state"] == "s1", q
    assert q.get("iss") == iss.url


def test_authorize_with_plain_pkce_is_invalid_request(iss):
    c = public_client(iss.url)
    verifier, _ = pkce()
    q = redirect_query(iss.url, response_type="code", client_id=c["client_id"],
                       redirect_uri=REDIRECT, state="s2", code_challenge=verifier,
                       code_challenge_method="plain")
    assert q["error"] == "invalid_request", q
    # The same client with S256 goes on to the login page.
    _, challenge = pkce()
    r = httpx.get(authorize_url(iss.url, response_type="code", client_id=c["client_id"],
                                redirect_uri=REDIRECT, state="s", code_challenge=challenge,
                                code_challenge_method="S256"),
                  follow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and "/login?" in r.headers["location"], r.headers


def test_authorize_unregistered_redirect_is_an_error_page_not_a_redirect(iss):
    c = public_client(iss.url)
    _, challenge = pkce()
    r = httpx.get(authorize_url(iss.url, response_type="code", client_id=c["client_id"],
                                redirect_uri="http://127.0.0.1:9/evil", state="s",
                                code_challenge=challenge, code_challenge_method="S256"),
                  follow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400, r.status_code
    assert "location" not in r.headers
    assert "invalid_request" in r.text


def test_authorize_unknown_resource_and_scope(iss):
    c = public_client(iss.url)
    _, challenge = pkce()
    base = dict(response_type="code", client_id=c["client_id"], redirect_uri=REDIRECT,
                state="s", code_challenge=challenge, code_challenge_method="S256")
    assert redirect_query(iss.url, resource="http://127.0.0.1:2/other", **base)["error"] == "invalid_target"
    # Scopes the resource does not offer are left out (RFC 6749 §3.3); only a
    # malformed one is an error.
    assert redirect_query(iss.url, scope='a"b', **base)["error"] == "invalid_scope"


# --- /token: authorization_code ----------------------------------------------


def test_wrong_verifier_then_right_verifier(iss):
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    wrong, _ = pkce()
    assert_error(token(iss.url, code_request(g, code_verifier=wrong)), 400, "invalid_grant")
    # The failed attempt changed nothing: the right verifier still redeems.
    r = token(iss.url, code_request(g))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"].lower() == "bearer"


def test_wrong_redirect_uri_then_right_one(iss):
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    assert_error(token(iss.url, code_request(g, redirect_uri="http://127.0.0.1:9/other")), 400, "invalid_grant")
    assert token(iss.url, code_request(g)).status_code == 200


def test_missing_verifier_is_invalid_request(iss):
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    assert_error(token(iss.url, code_request(g, code_verifier=None)), 400, "invalid_request")
    assert token(iss.url, code_request(g)).status_code == 200


def test_reused_code_is_refused_and_revokes_its_tokens(iss):
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    first = token(iss.url, code_request(g))
    assert first.status_code == 200, first.text
    t = first.json()
    assert introspect(iss.url, t["access_token"])["active"] is True
    assert_error(token(iss.url, code_request(g)), 400, "invalid_grant")
    # RFC 6749 §4.1.2: what the first redemption produced is revoked.
    assert introspect(iss.url, t["access_token"])["active"] is False
    r = token(iss.url, {"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                        "client_id": c["client_id"]})
    assert_error(r, 400, "invalid_grant")


def test_code_of_another_client_is_refused(iss):
    a, b = public_client(iss.url), public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=a["client_id"], redirect_uri=REDIRECT)
    assert_error(token(iss.url, code_request(g, client_id=b["client_id"])), 400, "invalid_grant")
    assert token(iss.url, code_request(g)).status_code == 200


# --- /token: refresh_token ---------------------------------------------------


def test_refresh_rotation_and_reuse_revokes_the_family(issuer, tmp_path):
    # No grace window: the first reuse already counts (the window's own
    # behaviour is the next test, and tests/it advances a clock past it).
    cfg = default_issuer_config(RESOURCE, tmp_path)
    cfg["refresh_grace_secs"] = 0
    iss = issuer(cfg)
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    t0 = token(iss.url, code_request(g)).json()
    r1 = token(iss.url, {"grant_type": "refresh_token", "refresh_token": t0["refresh_token"],
                         "client_id": c["client_id"]})
    assert r1.status_code == 200, r1.text
    t1 = r1.json()
    assert t1["refresh_token"] != t0["refresh_token"], "refresh tokens must rotate"
    assert introspect(iss.url, t1["access_token"])["active"] is True
    # Reuse of the rotated-away token: invalid_grant, and the whole family dies.
    reuse = token(iss.url, {"grant_type": "refresh_token", "refresh_token": t0["refresh_token"],
                            "client_id": c["client_id"]})
    assert_error(reuse, 400, "invalid_grant")
    latest = token(iss.url, {"grant_type": "refresh_token", "refresh_token": t1["refresh_token"],
                             "client_id": c["client_id"]})
    assert_error(latest, 400, "invalid_grant")
    assert introspect(iss.url, t1["access_token"])["active"] is False
    assert introspect(iss.url, t0["access_token"])["active"] is False


def test_refresh_retry_within_the_grace_window_keeps_the_family(iss):
    # A retry after a lost response (default 30 s window): a working pair,
    # and the pair the lost response carried keeps working too.
    c = public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    t0 = token(iss.url, code_request(g)).json()
    form = {"grant_type": "refresh_token", "refresh_token": t0["refresh_token"],
            "client_id": c["client_id"]}
    lost = token(iss.url, form)
    assert lost.status_code == 200, lost.text
    retry = token(iss.url, form)
    assert retry.status_code == 200, retry.text
    t1, t2 = lost.json(), retry.json()
    assert t2["refresh_token"] not in (t0["refresh_token"], t1["refresh_token"])
    for t in (t1, t2):
        assert introspect(iss.url, t["access_token"])["active"] is True
        nxt = token(iss.url, {**form, "refresh_token": t["refresh_token"]})
        assert nxt.status_code == 200, nxt.text


def test_refresh_with_another_clients_id_is_refused(iss):
    a, b = public_client(iss.url), public_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=a["client_id"], redirect_uri=REDIRECT)
    t = token(iss.url, code_request(g)).json()
    r = token(iss.url, {"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                        "client_id": b["client_id"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


# --- client authentication ---------------------------------------------------


def test_wrong_client_secret_then_the_good_one(iss):
    c = confidential_client(iss.url)
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    data = code_request(g, client_id=None)
    bad = token(iss.url, data, auth=(c["client_id"], "not-the-secret"))
    assert_error(bad, 401, "invalid_client")
    assert bad.headers.get("www-authenticate", "").lower().startswith("basic")
    # No secret at all for a confidential client: also invalid_client.
    assert token(iss.url, code_request(g)).json()["error"] == "invalid_client"
    good = token(iss.url, data, auth=(c["client_id"], c["client_secret"]))
    assert good.status_code == 200, good.text


def test_unknown_grant_type(iss):
    c = public_client(iss.url)
    r = token(iss.url, {"grant_type": "password", "username": "alice", "password": "alice-pw",
                        "client_id": c["client_id"]})
    assert_error(r, 400, "unsupported_grant_type")


# --- registration ------------------------------------------------------------


def test_bad_registration_access_token(iss):
    c = public_client(iss.url)
    uri = c["registration_client_uri"]
    assert uri.startswith(iss.url)
    for method in ("GET", "DELETE"):
        r = httpx.request(method, uri, headers={"Authorization": "Bearer wrong-token"}, timeout=TIMEOUT)
        assert r.status_code == 401, (method, r.status_code, r.text)
        assert "invalid_token" in (r.headers.get("www-authenticate", "") + r.text)
    r = httpx.get(uri, timeout=TIMEOUT)
    assert r.status_code == 401
    # Nothing changed: the right token reads the unchanged client.
    ok = httpx.get(uri, headers={"Authorization": f"Bearer {c['registration_access_token']}"}, timeout=TIMEOUT)
    assert ok.status_code == 200, ok.text
    assert ok.json()["client_id"] == c["client_id"]
    assert ok.json()["redirect_uris"] == [REDIRECT]


def test_registration_rejects_bad_metadata(iss):
    r = register(iss.url, ["not a url"])
    assert_error(r, 400, "invalid_redirect_uri")
    r = register(iss.url, ["http://attacker.example/cb"])  # plain http off loopback
    assert_error(r, 400, "invalid_redirect_uri")
    r = register(iss.url, [REDIRECT], grant_types=["client_credentials"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata", r.text


def test_initial_access_token_guards_registration(issuer, tmp_path):
    cfg = default_issuer_config(RESOURCE, tmp_path)
    cfg["registration"] = {"initial_access_token": "iat-0123456789abcdef"}
    iss = issuer(cfg)
    assert register(iss.url, [REDIRECT]).status_code == 401
    bad = register(iss.url, [REDIRECT], headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401, bad.text
    good = register(iss.url, [REDIRECT], headers={"Authorization": "Bearer iat-0123456789abcdef"})
    assert good.status_code == 201, good.text


# --- Client ID Metadata Documents and SSRF -----------------------------------


class ConnectionCounter:
    """A raw TCP listener on 127.0.0.1 that counts connection attempts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.t.join(2)
        self.sock.close()


def test_cimd_client_id_on_private_addresses_is_never_fetched(iss):
    counter = ConnectionCounter()
    try:
        _, challenge = pkce()
        ids = [
            f"https://127.0.0.1:{counter.port}/client.json",
            f"http://127.0.0.1:{counter.port}/client.json",
            "https://10.0.0.1/x",
            "https://[::1]/client.json",
            "https://localhost/client.json",
        ]
        for cid in ids:
            t0 = time.monotonic()
            r = httpx.get(authorize_url(iss.url, response_type="code", client_id=cid,
                                        redirect_uri=REDIRECT, state="s", code_challenge=challenge,
                                        code_challenge_method="S256"),
                          follow_redirects=False, timeout=TIMEOUT)
            assert r.status_code in (400, 401), (cid, r.status_code, r.headers)
            assert "location" not in r.headers, cid
            assert "invalid_client" in r.text or "invalid_request" in r.text, (cid, r.text[:300])
            assert time.monotonic() - t0 < 3, f"{cid}: answered slowly, as if it tried to connect"
            tr = token(iss.url, {"grant_type": "authorization_code", "code": "x", "code_verifier": "y" * 43,
                                 "redirect_uri": REDIRECT, "client_id": cid})
            assert tr.status_code in (400, 401) and tr.json()["error"] == "invalid_client", (cid, tr.text)
        time.sleep(0.3)
        assert counter.count == 0, "the issuer connected to a private address"
    finally:
        counter.close()


def test_unknown_client_id_is_an_error_page(iss):
    _, challenge = pkce()
    r = httpx.get(authorize_url(iss.url, response_type="code", client_id="nope", redirect_uri=REDIRECT,
                                state="s", code_challenge=challenge, code_challenge_method="S256"),
                  follow_redirects=False, timeout=TIMEOUT)
    assert r.status_code in (400, 401) and "location" not in r.headers
    assert "invalid_client" in r.text


# --- the browser leg ------------------------------------------------------------


def test_wrong_password_then_right_password(iss):
    c = public_client(iss.url)
    _, challenge = pkce()
    url = authorize_url(iss.url, response_type="code", client_id=c["client_id"], redirect_uri=REDIRECT,
                        state="s", code_challenge=challenge, code_challenge_method="S256")
    b = Browser("alice", "wrong-password")
    try:
        with pytest.raises(AssertionError):
            b.run(url, REDIRECT, max_steps=4)
    finally:
        b.close()
    g = get_code(iss.url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT)
    assert g.code


def test_consent_denied_redirects_access_denied(iss):
    c = public_client(iss.url)
    _, challenge = pkce()
    url = authorize_url(iss.url, response_type="code", client_id=c["client_id"], redirect_uri=REDIRECT,
                        state="st", code_challenge=challenge, code_challenge_method="S256")
    b = Browser("alice", "alice-pw", decision="deny")
    try:
        q = b.run(url, REDIRECT)
    finally:
        b.close()
    assert q["error"] == "access_denied" and q["state"] == "st" and "code" not in q, q


def test_login_post_without_csrf_cookie_is_refused(iss):
    c = public_client(iss.url)
    _, challenge = pkce()
    with httpx.Client(timeout=TIMEOUT) as browser:
        r = browser.get(authorize_url(iss.url, response_type="code", client_id=c["client_id"],
                                      redirect_uri=REDIRECT, state="s", code_challenge=challenge,
                                      code_challenge_method="S256"), follow_redirects=True)
        assert r.status_code == 200 and "password" in r.text
        from oauth import parse_forms

        f = parse_forms(r.text)[0]
        data = {**f.fields, "username": "alice", "password": "alice-pw"}
    # A different "browser" (no cookies) posting the same form: refused.
    r = httpx.post(f"{iss.url}/login", data=data, follow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400 and "location" not in r.headers, r.status_code
