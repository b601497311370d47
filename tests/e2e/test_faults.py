"""Faults against the real binaries: a second verifier on a running one's
ports, and issuer replicas on one Redis that start together and rotate.

Revocation faults (Redis SIGKILL with data loss, Redis down at verifier
start, revocation retried after a failure, cluster failover and master kill
under load, JWKS empty or unreachable) run in-process against real
redis-server processes in ``tests/it`` (see RELIABILITY.md).
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import time

import httpx

from conftest import ADMIN_TOKEN, default_issuer_config
from harness import LISTENING_RX, free_port


def test_a_second_verifier_on_the_same_ports_exits_nonzero(verifier, bins):
    http, grpc = free_port(), free_port()
    env = {
        "MCPGW_VERIFIER_HTTP_ADDR": f"127.0.0.1:{http}",
        "MCPGW_VERIFIER_GRPC_ADDR": f"127.0.0.1:{grpc}",
        "MCPGW_VERIFIER_WORKER_THREADS": "2",
    }
    first = verifier("http://127.0.0.1:1", "http://127.0.0.1:1/mcp", env=env)
    for threads in ("1", "2", "4"):
        e = {
            "PATH": "/usr/bin:/bin",
            "MCPGW_VERIFIER_ISSUERS": "http://127.0.0.1:1",
            "MCPGW_VERIFIER_RESOURCE": "http://127.0.0.1:1/mcp",
            **env,
            "MCPGW_VERIFIER_WORKER_THREADS": threads,
        }
        p = subprocess.run([str(bins.verifier)], env=e, capture_output=True, timeout=20)
        assert p.returncode != 0, f"second verifier ({threads} threads) started: {p.stderr[-2000:]!r}"
        assert b"cannot bind" in p.stderr + p.stdout
    assert first.proc.alive()


def _kids(url: str) -> list[str]:
    return sorted(k["kid"] for k in httpx.get(f"{url}/jwks", timeout=5).json()["keys"])


def test_two_issuers_starting_together_agree_and_follow_a_rotation(spawn, bins, redis, tmp_path):
    ports = [free_port(), free_port()]
    paths = []
    for i, port in enumerate(ports):
        cfg = default_issuer_config("http://127.0.0.1:1/mcp", tmp_path, None)
        cfg["storage"] = {"kind": "redis", "redis_urls": [redis]}
        cfg["listen"] = f"127.0.0.1:{port}"
        cfg["issuer"] = "http://127.0.0.1:1"
        from harness import toml_dumps

        path = tmp_path / f"replica-{i}.toml"
        path.write_text(toml_dumps(cfg))
        paths.append(path)

    def start(i: int):
        return spawn(
            f"replica-{i}",
            [bins.issuer, "--config", paths[i]],
            env={"RUST_LOG": "info"},
            ready_regex=LISTENING_RX,
            ready_url=f"http://127.0.0.1:{ports[i]}/healthz",
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        list(ex.map(start, [0, 1]))
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    a, b = (_kids(u) for u in urls)
    assert a == b and len(a) == 2, f"replicas disagree: {a} vs {b}"
    r = httpx.post(f"{urls[0]}/admin/keys/rotate", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    while _kids(urls[1]) != _kids(urls[0]):
        assert time.monotonic() - t0 < 5, "the other replica did not follow the rotation"
        time.sleep(0.1)
    print(f"rotation followed in {time.monotonic() - t0:.2f}s")
