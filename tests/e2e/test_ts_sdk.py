"""The official MCP TypeScript SDK client (npm @modelcontextprotocol/sdk)
against a real deployment: Envoy (ext_authz gRPC, the deploy/ config) →
verifier → test MCP server, tokens from the issuer binary, revocation
through a real redis-server.

The SDK does the OAuth itself (ts_client/client.mjs only stores what it is
given): 401 → RFC 9728 metadata → RFC 8414 metadata → RFC 7591 registration
→ /authorize with PKCE S256 and `resource` → token → MCP calls. The test is
the user: it fills the issuer's login and consent forms, then revokes the
access token, and the SDK's next call gets a 401 and recovers by itself
with its refresh token. Run twice: the SDK registering itself (RFC 7591),
and the SDK naming itself by a Client ID Metadata Document URL, served over
TLS on loopback by the test and fetched by the issuer."""

from __future__ import annotations

import datetime
import ipaddress
import json
import queue
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import deploy_configs
from conftest import ALICE, E2E, default_issuer_config, need
from harness import free_port
from oauth import TIMEOUT, Browser, jwt_claims
from test_mcp_sdk import SCOPE, wait_refused
from test_proxies import start_proxy

TS_DIR = E2E / "ts_client"


class Node:
    """client.mjs as a child process speaking JSON lines."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line)
        put(None)

    def read(self, timeout: float = 60) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no word from the TS client in {timeout} s; stderr:\n{''.join(self.stderr)}")
        assert line is not None, f"the TS client exited ({self.proc.poll()}); stderr:\n{''.join(self.stderr)}"
        ev = json.loads(line)
        assert ev.get("event") != "error", ev
        return ev

    def send(self, obj: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class MetadataDocument:
    """An https server on 127.0.0.1 serving one client metadata document,
    with a CA of its own (the issuer is told to trust it through
    SSL_CERT_FILE); counts the fetches."""

    def __init__(self, tmp: Path, redirect_uri: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))

        def cert(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
            b = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                 .issuer_name(issuer_name).public_key(key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(validity[0]).not_valid_after(validity[1])
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if not ca:
                b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                    critical=False)
            return b.sign(issuer_key, hashes.SHA256())

        ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcpgate e2e CA")])
        ca = cert("mcpgate e2e CA", ca_key, ca_name, ca_key, True)
        leaf = cert("127.0.0.1", leaf_key, ca_name, ca_key, False)
        self.ca_file = tmp / "cimd-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain, key = tmp / "cimd-cert.pem", tmp / "cimd-key.pem"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/clients/ts-sdk.json"
        self.doc = {"client_id": self.url, "client_name": "mcpgate e2e (typescript sdk, CIMD)",
                    "redirect_uris": [redirect_uri], "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"], "token_endpoint_auth_method": "none"}
        self.fetches = 0
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.fetches += 1
                body = json.dumps(outer.doc).encode()
                self.send_response(200 if self.path == "/clients/ts-sdk.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("registration", ["dcr", "cimd"])
def test_ts_sdk_client_through_envoy_authorizes_calls_and_refreshes_after_revocation(
    redis, issuer, verifier, mcp_backend, spawn, tmp_path, registration
):
    node = shutil.which("node")
    need(node is not None, "node")
    need((TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(),
         "the TS SDK (cd tests/e2e/ts_client && npm ci)")

    gw = free_port()
    mcp_url = f"http://127.0.0.1:{gw}/mcp"
    cfg = default_issuer_config(mcp_url, tmp_path)
    cfg["revocation"] = {"kind": "redis", "redis_urls": [redis]}
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    argv = [node, str(TS_DIR / "client.mjs"), mcp_url, redirect_uri]
    env = None
    doc = None
    if registration == "cimd":
        doc = MetadataDocument(tmp_path, redirect_uri)
        # The document lives on loopback: allowed here, refused by default.
        cfg["cimd"] = {"allow_private_addresses": True}
        env = {"SSL_CERT_FILE": str(doc.ca_file)}
        argv.append(doc.url)
    iss = issuer(cfg, env=env)
    v = verifier(iss.url, mcp_url, redis_url=redis, env={"MCPGW_VERIFIER_REQUIRED_SCOPES": SCOPE})
    start_proxy("envoy", spawn, tmp_path, deploy_configs.ports(gw, v.http, v.grpc, mcp_backend.url))

    client = Node(argv, TS_DIR)
    try:
        # The SDK found the issuer through the gateway's 401 and registered.
        ev = client.read()
        assert ev["event"] == "authorize", ev
        az = httpx.URL(ev["url"])
        assert str(az).startswith(f"{iss.url}/authorize?"), az
        assert az.params["code_challenge_method"] == "S256" and az.params["code_challenge"]
        assert az.params["resource"] == mcp_url
        assert SCOPE in az.params.get("scope", "").split(), az.params
        browser = Browser(ALICE[0], ALICE[1])
        try:
            result = browser.run(ev["url"], redirect_uri)
        finally:
            browser.close()
        assert result.get("iss") == iss.url, result  # RFC 9207
        client.send(result)

        ev = client.read()
        assert ev["event"] == "called", ev
        assert ev["tools"] == ["add", "whoami"], ev
        assert ev["sum"] == 5, ev
        who = ev["who"]
        assert who["email"] == ALICE[2] and who["user_id"] and who["client_id"], who
        assert SCOPE in (who["scopes"] or ""), who
        assert who["authorization_forwarded"] is False, who
        assert ev["seen"]["authorizations"] == 1, ev["seen"]
        if doc:
            # No registration: the client_id is the document's URL, fetched by the issuer.
            assert who["client_id"] == doc.url, who
            assert doc.fetches >= 1
        else:
            assert ev["seen"]["registrations"] == 1, ev["seen"]
        first = ev["access_token"]
        claims = jwt_claims(first)
        assert claims["aud"] in (mcp_url, [mcp_url]) and claims["client_id"] == who["client_id"]

        # Revoke the access token; the verifier refuses it within a second,
        # and the SDK's next call recovers with its refresh token, no login.
        rv = httpx.post(f"{iss.url}/revoke", data={"token": first, "token_type_hint": "access_token",
                                                   "client_id": who["client_id"]}, timeout=TIMEOUT)
        assert rv.status_code == 200, rv.text
        assert wait_refused(mcp_url, first) < 1.0
        client.send({"action": "call"})
        ev = client.read()
        assert ev["event"] == "called-again", ev
        assert ev["who"]["user_id"] == who["user_id"], ev
        assert ev["access_token"] != first, "the SDK did not get a new access token"
        assert ev["seen"]["authorizations"] == 1, ("the SDK logged in again instead of refreshing", ev["seen"])
        assert ev["seen"]["tokenSets"] == 2, ev["seen"]

        client.send({"action": "exit"})
        assert client.proc.wait(30) == 0, "".join(client.stderr)
    finally:
        client.stop()
        if doc:
            doc.close()
