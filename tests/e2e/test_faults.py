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
    admin_ports = [free_port(), free_port()]
    paths = []
    for i, port in enumerate(ports):
        cfg = default_issuer_config("http://127.0.0.1:1/mcp", tmp_path, None)
        cfg["storage"] = {"kind": "redis", "redis_urls": [redis]}
        cfg["listen"] = f"127.0.0.1:{port}"
        cfg["admin_listen"] = f"127.0.0.1:{admin_ports[i]}"
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
    r = httpx.post(f"http://127.0.0.1:{admin_ports[0]}/admin/keys/rotate", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    while _kids(urls[1]) != _kids(urls[0]):
        assert time.monotonic() - t0 < 5, "the other replica did not follow the rotation"
        time.sleep(0.1)
    print(f"rotation followed in {time.monotonic() - t0:.2f}s")


# --- Redis SIGKILL with data loss, under a load generator -------------------

RESOURCE = "http://127.0.0.1:1/mcp"
# How long after its acknowledgement a revocation may take to reach a
# verifier whose subscription is reconnecting (backoff ≤ 0.5 s, then resync).
PROPAGATION = 1.5
REDIRECT = "http://127.0.0.1:9/callback"


def _family(iss_url: str) -> dict:
    from conftest import ALICE
    from oauth import get_code, register, token

    c = register(iss_url, [REDIRECT], token_endpoint_auth_method="none",
                 grant_types=["authorization_code", "refresh_token"]).json()
    g = get_code(iss_url, ALICE[:2], client_id=c["client_id"], redirect_uri=REDIRECT, resource=RESOURCE)
    t = token(iss_url, {"grant_type": "authorization_code", "code": g.code, "redirect_uri": REDIRECT,
                        "code_verifier": g.verifier, "client_id": c["client_id"]}).json()
    t["client_id"] = c["client_id"]
    return t


def _decide(http: httpx.Client, verifier_http: str, at: str) -> int:
    return http.get(f"{verifier_http}/auth", headers={
        "Authorization": f"Bearer {at}", "X-Forwarded-Host": "127.0.0.1:1", "X-Forwarded-Uri": "/mcp",
        "X-Forwarded-Proto": "http", "X-Forwarded-Method": "POST"}).status_code


def _revoke(iss_url: str, t: dict) -> int:
    return httpx.post(f"{iss_url}/revoke", data={"token": t["refresh_token"], "client_id": t["client_id"],
                                                   "token_type_hint": "refresh_token"}, timeout=10).status_code


def test_redis_sigkill_with_data_loss_under_load(spawn, issuer, verifier, redis, tmp_path):
    import os
    import shutil
    import signal
    import threading

    port = int(redis.rsplit(":", 1)[1])
    cfg = default_issuer_config(RESOURCE, tmp_path, None)
    cfg["revocation"] = {"kind": "redis", "redis_urls": [redis]}
    iss = issuer(cfg, resource=RESOURCE)
    v = verifier(iss.url, RESOURCE, redis_url=redis)
    fams = [_family(iss.url) for _ in range(4)]
    # Revoked tokens with the time their revocation was acknowledged: a
    # verifier must deny them from PROPAGATION after that (pub/sub, or a
    # resync after a reconnect).
    revoked: dict[str, float] = {}
    good = [f["access_token"] for f in fams[2:]]
    for f in fams[:2]:
        assert _revoke(iss.url, f) == 200
        revoked[f["access_token"]] = time.monotonic()
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"decisions": 0, "wrongful_allows": 0, "allowed_while_propagating": 0, "wrong_denies_401": 0}

    def load() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                with lock:
                    rv, gd = dict(revoked), list(good)
                for at, acked in rv.items():
                    t = time.monotonic()
                    s = _decide(http, v.http, at)
                    with lock:
                        stats["decisions"] += 1
                        if t - acked > PROPAGATION:
                            stats["wrongful_allows"] += s == 200
                        else:
                            stats["allowed_while_propagating"] += s == 200
                for at in gd:
                    s = _decide(http, v.http, at)
                    with lock:
                        stats["decisions"] += 1
                        stats["wrong_denies_401"] += s == 401

    th = threading.Thread(target=load)
    th.start()
    t_ack = fresh = None
    try:
        time.sleep(0.5)
        # SIGKILL Redis, revoke meanwhile (must not be acknowledged), and
        # bring Redis back empty on the same port.
        rproc = spawn.started[0]
        assert rproc.name == "redis"
        os.killpg(rproc.pid, signal.SIGKILL)
        rproc.popen.wait()
        assert _revoke(iss.url, fams[2]) == 503, "a revocation was acknowledged while Redis was down"
        d = tmp_path / "redis2"
        d.mkdir()
        t_back = time.monotonic()
        spawn("redis-2", [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(d)], ready_port=port, timeout=15)
        while _revoke(iss.url, fams[2]) != 200:
            assert time.monotonic() - t_back < 10, "revocation never acknowledged after Redis returned"
            time.sleep(0.1)
        t_ack = time.monotonic() - t_back
        with lock:
            good.remove(fams[2]["access_token"])
            revoked[fams[2]["access_token"]] = time.monotonic()
        # A verifier started now must enforce every revocation: Redis got
        # them back (verifier write-back, or the issuer's republisher).
        t0 = time.monotonic()
        fresh = None
        while time.monotonic() - t0 < 15:
            v2 = verifier(iss.url, RESOURCE, redis_url=redis, name="late")
            with httpx.Client(timeout=5) as http:
                wait_ready = time.monotonic()
                while http.get(f"{v2.http}/readyz").status_code != 200 and time.monotonic() - wait_ready < 5:
                    time.sleep(0.05)
                if all(_decide(http, v2.http, at) == 401 for at in revoked):
                    fresh = time.monotonic() - t0
                    break
            v2.proc.stop()
            time.sleep(0.5)
        time.sleep(0.5)
    finally:
        stop.set()
        th.join()
    print(f"redis data loss: {stats}, revocation acknowledged {t_ack:.2f}s after Redis returned, "
          f"a new verifier enforced every revocation after {fresh}")
    assert stats["wrongful_allows"] == 0, stats
    assert fresh is not None, "a verifier started after the data loss did not see every revocation"
    assert stats["decisions"] > 100
