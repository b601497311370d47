#!/usr/bin/env python3
"""The verifier benchmark (see BENCHMARKS.md; run it through benches/run).

Everything is real: the release `verifier` binary, a JWKS served over HTTP,
JWTs signed with RS256 / ES256 / EdDSA keys made here, h2load as the load
generator (gRPC ext_authz Check over h2c, ForwardAuth over HTTP/1.1),
redis-server for revocation propagation, nginx `return 200` as the
baseline, `openssl speed` for the raw signature-verification limit.

On a 2-core machine the verifier is pinned to CPU 0 and h2load to CPU 1;
both processes' CPU use is measured and reported.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPO = Path(__file__).resolve().parent.parent
RESOURCE = "https://mcp.bench.example/mcp"
CLK_TCK = os.sysconf("SC_CLK_TCK")
VERIFIER_CPU, LOAD_CPU = "0", "1"


# --- tokens -------------------------------------------------------------------


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    def __init__(self, alg: str):
        self.alg, self.kid = alg, f"bench-{alg.lower()}"
        if alg == "RS256":
            self.k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = self.k.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
        elif alg == "ES256":
            self.k = ec.generate_private_key(ec.SECP256R1())
            pub = self.k.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(pub.x.to_bytes(32, "big")),
                        "y": b64u(pub.y.to_bytes(32, "big"))}
        else:
            self.k = ed25519.Ed25519PrivateKey.generate()
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
            raw = self.k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
        self.jwk.update({"kid": self.kid, "alg": alg, "use": "sig"})

    def sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            return self.k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.k.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.k.sign(data)

    def mint(self, iss: str, jti: str, scope: str = "mcp:tools") -> str:
        now = int(time.time())
        head = {"alg": self.alg, "kid": self.kid, "typ": "at+jwt"}
        body = {"iss": iss, "sub": "local:bench", "aud": RESOURCE, "iat": now, "exp": now + 3600,
                "jti": jti, "client_id": "bench-client", "scope": scope, "username": "bench"}
        signing_input = f"{b64u(json.dumps(head).encode())}.{b64u(json.dumps(body).encode())}"
        return f"{signing_input}.{b64u(self.sign(signing_input.encode()))}"


# --- processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, headers: dict | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


@dataclass
class Server:
    proc: subprocess.Popen
    http: int = 0
    grpc: int = 0
    startup_ms: float = 0.0
    log: Path | None = None
    metrics: int = 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Jwks(BaseHTTPRequestHandler):
    doc = b"{}"

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.doc)))
        self.end_headers()
        self.wfile.write(self.doc)

    def log_message(self, *a) -> None:
        pass


def start_verifier(bin_dir: Path, iss: str, tmp: Path, name: str, env: dict | None = None) -> Server:
    http, grpc, metrics = free_port(), free_port(), free_port()
    e = {**os.environ, "RUST_LOG": "info", "MCPGW_VERIFIER_ISSUERS": iss,
         "MCPGW_VERIFIER_JWKS_URI": f"{iss}/jwks.json", "MCPGW_VERIFIER_RESOURCE": RESOURCE,
         "MCPGW_VERIFIER_HTTP_ADDR": f"127.0.0.1:{http}", "MCPGW_VERIFIER_GRPC_ADDR": f"127.0.0.1:{grpc}",
         "MCPGW_VERIFIER_METRICS_ADDR": f"127.0.0.1:{metrics}",
         **(env or {})}
    log = tmp / f"{name}.log"
    t0 = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", VERIFIER_CPU, str(bin_dir / "verifier")], env=e,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    while http_status(f"http://127.0.0.1:{http}/readyz") != 200:
        if proc.poll() is not None or time.monotonic() - t0 > 30:
            raise SystemExit(f"verifier did not become ready; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.002)
    return Server(proc, http, grpc, (time.monotonic() - t0) * 1000, log, metrics)


def decisions(s: Server) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{s.metrics}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r'^mcpgate_verifier_decisions_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = f"{labels['protocol']}/{labels['decision']}/{labels['reason']}"
        out[key] = float(m.group(2))
    return out


# --- gRPC request body ----------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(num: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def check_request_frame(token: str | None) -> bytes:
    """A gRPC-framed envoy.service.auth.v3.CheckRequest for POST /mcp."""
    headers = {":authority": "mcp.bench.example", ":method": "POST", ":path": "/mcp",
               "content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    http = _ld(2, "POST") + b"".join(_ld(3, _ld(1, k) + _ld(2, v)) for k, v in headers.items())
    http += _ld(4, "/mcp") + _ld(5, "mcp.bench.example") + _ld(6, "https") + _ld(10, "HTTP/2")
    msg = _ld(1, _ld(4, _ld(2, http)))
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


# --- h2load ---------------------------------------------------------------------


@dataclass
class Run:
    label: str
    rps: float
    done: int
    failed: int
    p50_us: float = 0.0
    p99_us: float = 0.0
    target_cpu: float = 0.0
    load_cpu: float = 0.0
    extra: dict = field(default_factory=dict)


def h2load(label: str, url: str, pid: int, tmp: Path, *, grpc_body: bytes | None = None,
           headers: dict | None = None, h1: bool = False, seconds: float, clients: int, streams: int,
           rate_per_client: float | None = None) -> Run:
    argv = ["taskset", "-c", LOAD_CPU, "h2load", "-t", "1", "-c", str(clients), "-m", str(streams),
            "-D", str(int(seconds)), "--warm-up-time", "1"]
    if h1:
        argv.append("--h1")
    if grpc_body is not None:
        body = tmp / "body.bin"
        body.write_bytes(grpc_body)
        argv += ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    logf = tmp / "latency.log"
    if rate_per_client:
        argv += ["--rps", f"{rate_per_client:.0f}", "--log-file", str(logf)]
    argv.append(url)
    before_t, before_c = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 60)
    wall = time.monotonic() - t0
    after_c = resource.getrusage(resource.RUSAGE_CHILDREN)
    target_cpu = (cpu_seconds(pid) - before_t) / wall
    load_cpu = ((after_c.ru_utime + after_c.ru_stime) - (before_c.ru_utime + before_c.ru_stime)) / wall
    text = out.stdout + out.stderr
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", text)
    if not (m and r):
        raise SystemExit(f"h2load failed ({' '.join(argv)}):\n{text}")
    run = Run(label, float(m.group(1)), int(r.group(1)), int(r.group(3)), target_cpu=target_cpu,
              load_cpu=load_cpu)
    if rate_per_client and logf.exists():
        lat = sorted(int(line.split("\t")[2]) for line in logf.read_text().splitlines() if line.strip())
        if lat:
            run.p50_us = lat[len(lat) // 2]
            run.p99_us = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            run.extra["max_us"] = lat[-1]
        logf.unlink()
    return run


LATENCY_CONNECTIONS = 8


def measure(label: str, url: str, pid: int, tmp: Path, seconds: float, **kw) -> dict:
    """One table row. Max throughput: closed loop with plenty in flight
    (gRPC: 16 connections x 4 streams, as Envoy multiplexes Checks on a few
    HTTP/2 connections; HTTP/1.1: 32 connections). Latency: 8 connections
    with one request each, first closed loop for that shape's max, then
    open loop at 80% of it (h2load --rps) with every request logged.
    (With several streams per connection, h2load's --rps releases requests
    in bursts of up to the stream cap, which adds latency proportional to
    the cap even at 10% load; see `loadgen_artifact`.)"""
    clients, streams = (32, 1) if kw.get("h1") else (16, 4)
    peak = h2load(label, url, pid, tmp, seconds=seconds, clients=clients, streams=streams, **kw)
    n = LATENCY_CONNECTIONS
    peak_lat = h2load(label, url, pid, tmp, seconds=seconds, clients=n, streams=1, **kw)
    at80 = h2load(label, url, pid, tmp, seconds=seconds, clients=n, streams=1,
                  rate_per_client=max(1.0, peak_lat.rps * 0.8 / n), **kw)
    row = {"label": label, "max_rps": peak.rps, "verifier_cpu": peak.target_cpu, "loadgen_cpu": peak.load_cpu,
           "failed": peak.failed, "max_rps_latency_shape": peak_lat.rps, "rate80_rps": at80.rps,
           "p50_us": at80.p50_us, "p99_us": at80.p99_us, "verifier_cpu80": at80.target_cpu}
    print(json.dumps(row), flush=True)
    return row


def loadgen_artifact(url: str, pid: int, tmp: Path, seconds: float, **kw) -> dict:
    """The same target at a light 2,000 req/s open loop, one connection,
    with 1 and with 16 streams allowed: the difference is h2load's."""
    out = {}
    for streams in (1, 16):
        r = h2load("artifact", url, pid, tmp, seconds=seconds, clients=1, streams=streams,
                   rate_per_client=2000, **kw)
        out[f"streams_{streams}"] = {"rps": r.rps, "p50_us": r.p50_us, "p99_us": r.p99_us}
    print(json.dumps(out), flush=True)
    return out


# --- the rest -------------------------------------------------------------------


def openssl_limits() -> dict[str, float]:
    exe = shutil.which("openssl")
    if not exe:
        return {}
    out = subprocess.run(["taskset", "-c", VERIFIER_CPU, exe, "speed", "-seconds", "2", "-elapsed",
                          "rsa2048", "ecdsap256", "ed25519"], capture_output=True, text=True, timeout=120).stdout
    lim = {}
    for alg, rx in (("RS256", r"^rsa\s+2048 bits\s+\S+\s+\S+\s+\S+\s+(\S+)"),
                    ("ES256", r"^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+\S+\s+(\S+)"),
                    ("EdDSA", r"^\s*253 bits EdDSA \(Ed25519\)\s+\S+\s+\S+\s+\S+\s+(\S+)")):
        m = re.search(rx, out, re.M)
        if m:
            lim[alg] = float(m.group(1))
    return lim


def nginx_baseline(tmp: Path) -> tuple[Server, int, int]:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    h1, h2 = free_port(), free_port()
    d = tmp / "nginx"
    (d / "logs").mkdir(parents=True)
    conf = d / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{h1}; location / {{ return 200; }} }}
    server {{ listen 127.0.0.1:{h2} http2; location / {{ return 200; }} }}
}}
""")
    proc = subprocess.Popen(["taskset", "-c", VERIFIER_CPU, exe, "-p", str(d), "-c", str(conf), "-e",
                             str(d / "logs" / "error.log"), "-g", "daemon off;"])
    for _ in range(500):
        if http_status(f"http://127.0.0.1:{h1}/") == 200:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    return Server(proc), h1, h2


def nginx_worker(server: Server) -> int:
    kids = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return int(kids[0]) if kids else server.proc.pid


def resp(sock: socket.socket, *args: str) -> bytes:
    cmd = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    sock.sendall(cmd.encode())
    return sock.recv(4096)


def revocation_propagation(bin_dir: Path, iss: str, key: Key, tmp: Path, n: int) -> dict:
    exe = shutil.which("redis-server")
    if not exe:
        return {}
    port = free_port()
    redis = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.01)
        env = {"MCPGW_VERIFIER_REDIS_URL": f"redis://127.0.0.1:{port}"}
        vs = [start_verifier(bin_dir, iss, tmp, f"verifier-rev-{i}", env) for i in range(2)]
        try:
            lags = []
            for i in range(n):
                tok = key.mint(iss, f"rev-{i}-{time.time_ns()}")
                auth = {"Authorization": f"Bearer {tok}"}
                urls = [f"http://127.0.0.1:{v.http}/auth" for v in vs]
                assert all(http_status(u, auth) == 200 for u in urls)
                claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
                payload = json.dumps({"kind": "jti", "id": claims["jti"], "exp": claims["exp"],
                                      "published_ms": int(time.time() * 1000)})
                t0 = time.monotonic()
                resp(sock, "ZADD", "{mcpgate}:revoked:jti", "GT", str(claims["exp"]), claims["jti"])
                resp(sock, "PUBLISH", "mcpgate:revocations", payload)
                pending = set(urls)
                while pending:
                    pending = {u for u in pending if http_status(u, auth) != 401}
                    if time.monotonic() - t0 > 5:
                        raise SystemExit("a revocation took more than 5 s")
                lags.append((time.monotonic() - t0) * 1000)
            text = urllib.request.urlopen(f"http://127.0.0.1:{vs[0].metrics}/metrics", timeout=5).read().decode()
            s = re.search(r"^mcpgate_verifier_revocation_propagation_seconds_sum (\S+)", text, re.M)
            c = re.search(r"^mcpgate_verifier_revocation_propagation_seconds_count (\S+)", text, re.M)
            lags.sort()
            return {"n": n, "p50_ms": lags[len(lags) // 2], "p99_ms": lags[min(n - 1, int(n * 0.99))],
                    "max_ms": lags[-1],
                    "server_mean_ms": float(s.group(1)) / float(c.group(1)) * 1000 if s and c else None}
        finally:
            for v in vs:
                v.stop()
    finally:
        redis.terminate()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--revocations", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "benches" / "results.json")
    ap.add_argument("--verify-speed", type=Path, help="the verify_speed example binary")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mcpgate-bench-"))
    keys = {alg: Key(alg) for alg in ("RS256", "ES256", "EdDSA")}
    Jwks.doc = json.dumps({"keys": [k.jwk for k in keys.values()]}).encode()
    jwks = ThreadingHTTPServer(("127.0.0.1", free_port()), Jwks)
    threading.Thread(target=jwks.serve_forever, daemon=True).start()
    iss = f"http://127.0.0.1:{jwks.server_address[1]}"
    results: dict = {"machine": {
        "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("model name")), platform.processor()),
        "cores": os.cpu_count(), "kernel": platform.release(),
        "h2load": subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()},
        "seconds": a.seconds, "latency_connections": LATENCY_CONNECTIONS, "runs": []}
    results["raw_verify_per_s"] = openssl_limits()

    def raw_limit() -> dict[str, float]:
        out = subprocess.run(["taskset", "-c", VERIFIER_CPU, str(a.verify_speed), "2"], capture_output=True,
                             text=True, check=True, timeout=120).stdout
        return json.loads(out)

    # Measured at the start and again at the end (a shared machine's speed
    # drifts); the report divides by the larger, the less flattering.
    raw_runs = [raw_limit()] if a.verify_speed else []

    # Start-up and idle memory.
    starts = []
    for i in range(5):
        v = start_verifier(a.bin_dir, iss, tmp, f"verifier-start-{i}")
        starts.append(v.startup_ms)
        if i == 0:
            results["idle_rss_kib"] = rss_kib(v.proc.pid)["VmRSS"]
        v.stop()
    results["startup_ms"] = statistics.median(starts)

    def suite(v: Server, cases: list[tuple[str, str | None]]) -> None:
        for label, tok in cases:
            before = decisions(v)
            for proto in ("grpc", "http"):
                if proto == "grpc":
                    url = f"http://127.0.0.1:{v.grpc}/envoy.service.auth.v3.Authorization/Check"
                    kw = {"grpc_body": check_request_frame(tok)}
                else:
                    url = f"http://127.0.0.1:{v.http}/auth"
                    kw = {"h1": True, "headers": {"authorization": f"Bearer {tok}"} if tok else {}}
                results["runs"].append(measure(f"{proto} {label}", url, v.proc.pid, tmp, a.seconds, **kw))
            after = decisions(v)
            results["runs"][-1]["decisions"] = {k: after[k] - before.get(k, 0) for k in after
                                                if after[k] != before.get(k, 0)}

    cached = start_verifier(a.bin_dir, iss, tmp, "verifier-cached")
    suite(cached, [("cached RS256", keys["RS256"].mint(iss, "cached")),
                   ("invalid token", "not-a-jwt.garbage.x")])
    results["loadgen_artifact"] = {"verifier": loadgen_artifact(
        f"http://127.0.0.1:{cached.grpc}/envoy.service.auth.v3.Authorization/Check", cached.proc.pid, tmp,
        min(a.seconds, 5), grpc_body=check_request_frame(keys["RS256"].mint(iss, "cached")))}
    results["peak_rss_kib_cached"] = rss_kib(cached.proc.pid)["VmHWM"]
    cached.stop()
    # The same, on tokio's multi-threaded runtime (one worker), which the
    # verifier uses when it has more than one CPU or TOKIO_WORKER_THREADS is set.
    mt = start_verifier(a.bin_dir, iss, tmp, "verifier-multi-thread", {"TOKIO_WORKER_THREADS": "1"})
    suite(mt, [("cached RS256, multi-thread runtime", keys["RS256"].mint(iss, "cached"))])
    mt.stop()
    uncached = start_verifier(a.bin_dir, iss, tmp, "verifier-uncached",
                              {"MCPGW_VERIFIER_TOKEN_CACHE_CAPACITY": "0"})
    suite(uncached, [(f"uncached {alg}", k.mint(iss, f"u-{alg}")) for alg, k in keys.items()])
    results["peak_rss_kib_uncached"] = rss_kib(uncached.proc.pid)["VmHWM"]
    uncached.stop()

    base, h1, h2 = nginx_baseline(tmp)
    try:
        w = nginx_worker(base)
        for label, url, kw in (("baseline nginx return 200 (h2c)", f"http://127.0.0.1:{h2}/", {"grpc_body": check_request_frame("x")}),
                               ("baseline nginx return 200 (HTTP/1.1)", f"http://127.0.0.1:{h1}/", {"h1": True})):
            results["runs"].append(measure(label, url, w, tmp, a.seconds, **kw))
        results["loadgen_artifact"]["nginx"] = loadgen_artifact(f"http://127.0.0.1:{h2}/", w, tmp, min(a.seconds, 5),
                                                                grpc_body=check_request_frame("x"))
    finally:
        base.stop()

    if a.verify_speed:
        raw_runs.append(raw_limit())
        results["raw_verify_per_s_aws_lc_runs"] = raw_runs
        results["raw_verify_per_s_aws_lc"] = {alg: max(r[alg] for r in raw_runs) for alg in raw_runs[0]}
    results["revocation"] = revocation_propagation(a.bin_dir, iss, keys["ES256"], tmp, a.revocations)
    print(json.dumps(results["revocation"]), flush=True)
    jwks.shutdown()
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {a.out}")


if __name__ == "__main__":
    sys.exit(main())
