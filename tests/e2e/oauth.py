"""OAuth helpers for the end-to-end tests: PKCE, dynamic registration, a
scripted "browser" that walks the issuer's (and an upstream provider's) HTML
login and consent forms with httpx, and token requests. Loopback only.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import httpx

TIMEOUT = httpx.Timeout(10.0)


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def jwt_claims(token: str) -> dict:
    """The (unverified) payload of a JWT: tests read what the issuer minted."""
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def jwt_header(token: str) -> dict:
    import json

    h = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


# --- HTML forms -------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, value)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._cur: Form | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._cur = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._cur)
        elif self._cur is not None and tag == "input" and a.get("name"):
            t = a.get("type", "text").lower()
            if t in ("submit", "button"):
                self._cur.buttons.append((a["name"], a.get("value", "")))
            else:
                self._cur.inputs.append((t, a["name"], a.get("value", "")))
                self._cur.fields[a["name"]] = a.get("value", "")
        elif self._cur is not None and tag == "button" and a.get("name"):
            self._cur.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def parse_forms(html: str) -> list[Form]:
    p = _FormParser()
    p.feed(html)
    return p.forms


# --- the scripted browser ---------------------------------------------------


class LoginError(AssertionError):
    pass


@dataclass
class Browser:
    """Follows redirects by hand, fills login forms (``username``/``login`` +
    ``password``) and answers consent forms (``decision`` buttons, or a bare
    submit) until a redirect reaches ``redirect_uri``; returns that URL's
    query. Keeps cookies across steps (one per test: a fresh "browser")."""

    username: str
    password: str
    decision: str = "approve"
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=TIMEOUT))
    trail: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.client.close()

    def run(self, url: str, redirect_uri: str, max_steps: int = 25) -> dict[str, str]:
        method, data = "GET", None
        for _ in range(max_steps):
            if url.startswith(redirect_uri):
                self.trail.append(f"-> {url}")
                return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
            self.trail.append(f"{method} {url}")
            r = self.client.request(method, url, data=data, follow_redirects=False)
            method, data = "GET", None
            if r.status_code in (301, 302, 303, 307, 308):
                url = urljoin(str(r.url), r.headers["location"])
                continue
            forms = parse_forms(r.text) if "html" in r.headers.get("content-type", "") else []
            form = self._pick(forms)
            if form is None:
                raise LoginError(
                    f"stuck at {r.url} ({r.status_code}): {r.text[:400]}\ntrail: {self.trail}"
                )
            data = dict(form.fields)
            names = {n.lower() for _, n, _ in form.inputs}
            for t, n, _ in form.inputs:
                if n in ("username", "login", "email") and t != "hidden":
                    data[n] = self.username
                elif t == "password":
                    data[n] = self.password
            decisions = [b for b in form.buttons if b[0] == "decision"]
            if decisions:
                data["decision"] = self.decision
            elif form.buttons and "password" not in names:
                n, v = form.buttons[0]
                data[n] = v
            method = "POST" if form.method == "post" else "GET"
            url = urljoin(str(r.url), form.action or str(r.url))
        raise LoginError(f"no redirect to {redirect_uri} after {max_steps} steps: {self.trail}")

    @staticmethod
    def _pick(forms: list[Form]) -> Form | None:
        for f in forms:
            if any(t == "password" for t, _, _ in f.inputs):
                return f
        for f in forms:
            if any(b[0] == "decision" for b in f.buttons) or f.method == "post":
                return f
        return forms[0] if forms else None


# --- issuer calls -----------------------------------------------------------


def metadata(issuer: str) -> dict:
    r = httpx.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    r.raise_for_status()
    return r.json()


def register(issuer: str, redirect_uris: list[str], headers: dict | None = None, **extra) -> httpx.Response:
    body = {"redirect_uris": redirect_uris, "client_name": "e2e", **extra}
    return httpx.post(f"{issuer}/register", json=body, headers=headers or {}, timeout=TIMEOUT)


def token(issuer: str, data: dict, auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{issuer}/token", data=data, auth=auth, timeout=TIMEOUT)


def authorize_url(issuer: str, **params) -> str:
    from urllib.parse import urlencode

    return f"{issuer}/authorize?{urlencode({k: v for k, v in params.items() if v is not None})}"


@dataclass
class Grant:
    """What one full authorization leaves behind."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    verifier: str
    code: str
    state: str


def get_code(
    issuer: str,
    user: tuple[str, str],
    *,
    client_id: str,
    redirect_uri: str,
    client_secret: str | None = None,
    resource: str | None = None,
    scope: str | None = None,
) -> Grant:
    """Runs /authorize through login + consent; returns the code and verifier."""
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(8)
    url = authorize_url(
        issuer,
        response_type="code",
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        code_challenge_method="S256",
        resource=resource,
        scope=scope,
    )
    b = Browser(*user)
    try:
        q = b.run(url, redirect_uri)
    finally:
        b.close()
    if "code" not in q:
        raise LoginError(f"no code: {q}")
    assert q.get("state") == state, q
    return Grant(client_id, client_secret, redirect_uri, verifier, q["code"], state)
