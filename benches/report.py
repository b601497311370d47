#!/usr/bin/env python3
"""Renders benches/results.json as BENCHMARKS.md (see benches/run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"cached_rps": 35_000, "uncached_fraction": 0.75, "p99_us": 1000, "rss_kib": 20 * 1024, "revocation_p99_ms": 1000}


def main(results_path: str, out_path: str, command: str) -> None:
    r = json.loads(Path(results_path).read_text())
    runs = {x["label"]: x for x in r["runs"]}
    raw_ossl = r.get("raw_verify_per_s", {})
    raw = r.get("raw_verify_per_s_aws_lc") or raw_ossl
    m = r["machine"]
    L = []
    w = L.append
    w("# Benchmarks\n")
    w("The verifier's decision throughput, latency and memory, measured by `benches/run` "
      "(h2load against the release binary; see the script for every step). Regenerate with:\n")
    w(f"```sh\n{command}\n```\n")
    w(f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; {m['h2load']}; {r['seconds']} s per run "
      "after a 1 s warm-up. The verifier (or the baseline nginx) is pinned to CPU 0 and h2load to CPU 1 "
      "(`taskset`); the CPU columns are each process's CPU time over the wall time, so a per-core figure is "
      "requests/s divided by the verifier's CPU.\n")
    w("## Check throughput and latency\n")
    w("Max = closed loop (gRPC: 8 connections x 16 streams; HTTP/1.1: 32 connections). "
      "Latency = a fixed rate of 80% of that max (h2load `--rps`; gRPC 16 x 4 in flight), p50/p99 from "
      "h2load's per-request log. gRPC is `envoy.service.auth.v3.Authorization/Check` over h2c; HTTP is "
      "ForwardAuth `GET /auth`. *Uncached* runs use a verifier with `token_cache_capacity = 0`, so every "
      "request does the full signature verification. *Invalid* is a malformed token (401).\n")
    w("| Run | Max req/s | Verifier CPU | h2load CPU | Req/s per verifier core | At 80%: req/s | p50 | p99 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for x in r["runs"]:
        per_core = x["max_rps"] / max(x["verifier_cpu"], 0.01)
        w(f"| {x['label']} | {x['max_rps']:,.0f} | {x['verifier_cpu']:.0%} | {x['loadgen_cpu']:.0%} | "
          f"{per_core:,.0f} | {x['rate80_rps']:,.0f} | {x['p50_us'] / 1000:.2f} ms | {x['p99_us'] / 1000:.2f} ms |")
    w("")
    w("## Against the limits\n")
    w("Raw limit: signature verifications/s on one core (CPU 0), same run, measured with the very call the "
      "verifier makes (`benches/verify_speed.rs`: aws-lc-rs `ParsedPublicKey::verify_sig`); `openssl speed "
      "-seconds 2 -elapsed rsa2048 ecdsap256 ed25519` for reference.\n")
    w("| | Raw verify/s (aws-lc, as used) | openssl speed | gRPC uncached Check/s per core | fraction | HTTP uncached per core | fraction |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for alg in ("RS256", "ES256", "EdDSA"):
        g, h = runs.get(f"grpc uncached {alg}"), runs.get(f"http uncached {alg}")
        if not (g and h and alg in raw):
            continue
        gc, hc = g["max_rps"] / max(g["verifier_cpu"], 0.01), h["max_rps"] / max(h["verifier_cpu"], 0.01)
        w(f"| {alg} | {raw[alg]:,.0f} | {raw_ossl.get(alg, 0):,.0f} | {gc:,.0f} | {gc / raw[alg]:.0%} | {hc:,.0f} | "
          f"{hc / raw[alg]:.0%} |")
    w("")
    base_g = runs.get("baseline nginx return 200 (h2c)")
    base_h = runs.get("baseline nginx return 200 (HTTP/1.1)")
    cg, ch = runs.get("grpc cached RS256"), runs.get("http cached RS256")
    if base_g and base_h and cg and ch:
        w("Baseline, same load generator, same pinning: nginx answering `return 200` with one worker. "
          f"Cached gRPC Check reaches {cg['max_rps'] / base_g['max_rps']:.0%} of nginx's h2c rate "
          f"({base_g['max_rps']:,.0f} req/s); cached ForwardAuth reaches {ch['max_rps'] / base_h['max_rps']:.0%} "
          f"of nginx's HTTP/1.1 rate ({base_h['max_rps']:,.0f} req/s).\n")
    w("## Memory, start-up, revocation\n")
    rev = r.get("revocation", {})
    w("| | Measured | Target |")
    w("|---|---:|---:|")
    w(f"| Idle RSS (VmRSS after start) | {r['idle_rss_kib'] / 1024:.1f} MiB | |")
    w(f"| Peak RSS under load, cached runs (VmHWM) | {r['peak_rss_kib_cached'] / 1024:.1f} MiB | < 20 MiB |")
    w(f"| Peak RSS under load, uncached runs (VmHWM) | {r['peak_rss_kib_uncached'] / 1024:.1f} MiB | < 20 MiB |")
    w(f"| Start-up to `/readyz` 200 (median of 5, incl. the first JWKS fetch) | {r['startup_ms']:.1f} ms | |")
    if rev:
        w(f"| Revocation propagation to both of two verifiers, p50 / p99 / max over {rev['n']} | "
          f"{rev['p50_ms']:.2f} / {rev['p99_ms']:.2f} / {rev['max_ms']:.2f} ms | p99 < 1 s |")
        if rev.get("server_mean_ms") is not None:
            w(f"| ... as the verifier measures it (`revocation_propagation_seconds`, mean) | {rev['server_mean_ms']:.2f} ms | |")
    w("")
    w("Revocation: the benchmark publishes each revocation exactly as the issuer does (ZADD + PUBLISH on a real "
      "redis-server) and polls `/auth` on both verifiers until both answer 401; the time includes that polling.\n")
    Path(out_path).write_text("\n".join(L) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
