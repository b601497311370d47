#!/usr/bin/env python3
"""Renders benches/scale.json (benches/scale.py) as the "Cost at scale"
sections of BENCHMARKS.md, between the markers below; the rest of the file
(benches/report.py's sections) is left as it is. benches/report.py keeps
this block when it rewrites the file.

    python3 benches/report_scale.py benches/scale.json BENCHMARKS.md "benches/run-scale"
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BEGIN = "<!-- scale:begin (benches/report_scale.py) -->"
END = "<!-- scale:end -->"
# A section is marked noisy when processes other than the benchmark's used
# more than this many cores on average while it ran.
NOISY_CORES = 0.15


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else 0.0


def spread(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return ""
    m = statistics.median(xs)
    return f" (±{(max(xs) - min(xs)) / 2 / m:.0%})" if m else ""


def status(doc: dict) -> str:
    """The provenance line every section starts with."""
    marks = []
    if doc.get("quick"):
        marks.append("**quick run** (small sizes, short runs)")
    fc = doc.get("foreign_cores", 0.0)
    if fc > NOISY_CORES:
        marks.append(f"**noisy machine** (other processes used {fc:.2f} of the cores while it ran)")
    when = doc.get("measured_at", "?")
    if marks:
        return (f"> Measured {when} in a " + " on a ".join(marks)
                + ": these figures show the shape, not the numbers; rerun `benches/run-scale` on a quiet machine.\n")
    return f"Measured {when}; other processes used {fc:.2f} cores meanwhile.\n"


def kib(x: float) -> str:
    return f"{x / 1024:.1f} MiB"


def issuer(doc: dict, w) -> None:
    ts = doc["targets"]
    ref = ts.get("oidc-provider")
    w("### Issuer against node `oidc-provider`\n")
    w(status(doc))
    w(f"{doc['chains']} concurrent chains (threads of the load script on CPU 1, one keep-alive connection "
      f"each), every server pinned to CPU 0; median of {doc['rounds']} interleaved round(s). *Per core* = grants "
      "divided by the CPU seconds of the server process (the issuer plus its redis-server for the Redis store; "
      f"node for `oidc-provider`). Authorization-code grants: {doc['codes_per_chain']} codes per chain, each "
      f"obtained through /authorize + login + consent beforehand, then redeemed at /token (only the redemption "
      f"is timed). Refresh grants: each chain rotates its refresh token for {doc['seconds']} s. `oidc-provider` "
      "(benches/oidc/provider.mjs): one public client, PKCE, refresh rotation on every use, RS256 JWT access "
      "tokens, its default in-memory adapter. *Server CPU* is how busy the server was during the refresh "
      "runs: below 100% the load script (Python, one core) is the limit; per-core figures divide by the CPU "
      "actually used, and every server gets the same load shape.\n")
    w("| Server | Code grants per core | vs oidc-provider | Refresh grants per core | vs oidc-provider | "
      "Refresh/s (wall) | Server CPU | Refresh p50 / p99 | Redis commands per refresh |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rc = med([r["code_per_core"] for r in ref["rounds"]]) if ref else 0
    rr = med([r["refresh_per_core"] for r in ref["rounds"]]) if ref else 0
    for name, t in ts.items():
        rs = t["rounds"]
        c, f = med([r["code_per_core"] for r in rs]), med([r["refresh_per_core"] for r in rs])
        cmds = med([r.get("redis_cmds_per_refresh") for r in rs])
        w(f"| {name} | {c:,.0f}{spread([r['code_per_core'] for r in rs])} | "
          f"{c / rc:.2f}x | {f:,.0f}{spread([r['refresh_per_core'] for r in rs])} | {f / rr:.2f}x | "
          f"{med([r['refresh_per_s'] for r in rs]):,.0f} | {med([r['server_cpu_util'] for r in rs]):.0%} | "
          f"{med([r['refresh_p50_ms'] for r in rs]):.1f} / {med([r['refresh_p99_ms'] for r in rs]):.1f} ms | "
          f"{f'{cmds:.1f}' if cmds else '—'} |" if rc and rr else f"| {name} | {c:,.0f} | | {f:,.0f} | | | | | |")
    w("")
    w("Cost per refresh against the chain's length: one chain, sequential refreshes; at each length the median "
      "latency and the server CPU per refresh over the next refreshes, and the largest refresh-family record in "
      "the Redis store (`STRLEN` of `{mcpgate:families}:*`).\n")
    points = [c["rotations"] for c in next(iter(ts.values()))["chain"]]
    w("| Server | " + " | ".join(f"after {p:,} rotation{'s' if p != 1 else ''}" for p in points) + " |")
    w("|---|" + "---:|" * len(points))
    for name, t in ts.items():
        w(f"| {name} | " + " | ".join(f"{c['p50_ms']:.2f} ms, {c['cpu_ms']:.2f} ms CPU" for c in t["chain"]) + " |")
    red = next((t for t in ts.values() if any(c.get("family_bytes") for c in t["chain"])), None)
    if red:
        w("| family record (Redis store) | " + " | ".join(f"{c['family_bytes']:,} B" for c in red["chain"]) + " |")
    w("")
    sig = doc.get("signing")
    if sig and rr:
        w(f"Signing alone (benches/sign_speed.rs: one thread on the servers' CPU, in the same run), against the "
          f"target of 3x `oidc-provider`'s refresh grants per core ({3 * rr:,.0f}/s): a token endpoint cannot "
          "issue more tokens per core than its signer signs. `jsonwebtoken::encode` is the library call the "
          "issuer used before, which parses the private key again for every token.\n")
        w("| Algorithm | Signer, tokens/s per core | vs 3x `oidc-provider` refreshes | `jsonwebtoken::encode`, tokens/s |")
        w("|---|---:|---:|---:|")
        for alg, v in sig.items():
            w(f"| {alg} | {v['signer_per_s']:,.0f} | {v['signer_per_s'] / (3 * rr):.2f}x | "
              f"{v['jsonwebtoken_encode_per_s']:,.0f} |")
        w("")
    w("Memory after the runs (and after topping up to the stated number of refreshes over 16 chains):\n")
    w("| Server | Refreshes | RSS | Peak RSS | Threads | Store size |")
    w("|---|---:|---:|---:|---:|---:|")
    for name, t in ts.items():
        a = t.get("after", {})
        store = ""
        if a.get("file_bytes"):
            store = f"{a['file_bytes'] / 2**20:.1f} MiB file"
        elif a.get("redis_used_memory"):
            store = f"{a['redis_used_memory'] / 2**20:.1f} MiB in Redis"
        w(f"| {name} | {a.get('refreshes', 0):,} | {kib(a.get('rss_kib', 0))} | {kib(a.get('hwm_kib', 0))} | "
          f"{a.get('threads', 0)} | {store} |")
    w("")


def envoy(doc: dict, w) -> None:
    ks = doc["kinds"]
    names = {"none": "no auth", "jwt_authn_cache": "`jwt_authn`, with its cache", "jwt_authn": "`jwt_authn`",
             "ext_authz": "ext_authz gRPC to a cached verifier (deploy/envoy/envoy.yaml)",
             "ext_authz_all_headers": "the same without `allowed_headers` (every header sent)"}
    w("### Through Envoy\n")
    w(status(doc))
    w(f"Envoy (`--concurrency 1`) and, for ext_authz, the verifier share CPU 0; h2load (HTTP/1.1, "
      f"{doc['connections']} connections, one request each, open loop at {doc['rate']:,} req/s with every request "
      "logged) and the upstream (nginx `return 200`) run on CPU 1. One RS256 token, so every cache is warm. "
      f"CPU = Envoy's (+ the verifier's) CPU time in the measured {doc['seconds']} s over the requests answered; "
      f"median of {doc['rounds']} interleaved round(s). *Added p50* = the row's p50 minus the p50 of "
      "`jwt_authn` with its cache, in the same run.\n")
    base = med([r["cpu_ms_per_1k"] for r in ks.get("jwt_authn_cache", [])])
    base_p50 = med([r["p50_us"] for r in ks.get("jwt_authn_cache", [])])
    w("| Envoy filter | CPU per 1,000 requests | of which Envoy / verifier | vs `jwt_authn` with cache | "
      "req/s | p50 | added p50 | p99 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k, rs in ks.items():
        cpu = med([r["cpu_ms_per_1k"] for r in rs])
        p50 = med([r["p50_us"] for r in rs])
        split = (f"{med([r['envoy_ms_per_1k'] for r in rs]):.1f} / {med([r['verifier_ms_per_1k'] for r in rs]):.1f} ms"
                 if k.startswith("ext_authz") else "")
        w(f"| {names.get(k, k)} | {cpu:.1f} ms{spread([r['cpu_ms_per_1k'] for r in rs])} | {split} | "
          f"{cpu / base:.2f}x | {med([r['rps'] for r in rs]):,.0f} | {p50 / 1000:.2f} ms | "
          f"{(p50 - base_p50) / 1000:+.2f} ms | "
          f"{med([r['p99_us'] for r in rs]) / 1000:.2f} ms |" if base else f"| {k} | {cpu:.1f} ms | | | | | | |")
    w("")


def revocation(doc: dict, w) -> None:
    w("### Verifier against the revocation set's size\n")
    w(status(doc))
    w("The set is written straight into a redis-server (on CPU 1) in the issuer's format (`ZADD "
      "{mcpgate}:revoked:jti <exp> <jti>`, 22-character ids, all with one expiry), then a verifier starts "
      "against it. "
      "*First sync* = start to the moment the verifier reports the whole set (`revocation_set_size`), "
      f"not stale, and `/readyz` 200; given up after {doc['sync_timeout_s']} s. Cached gRPC Check per core as in "
      "the throughput table, with the same token (not revoked).\n")
    rows = doc["sizes"]
    base = next((r["per_core"] for r in rows if r["entries"] == 0), None)
    w("| Revoked entries | Redis memory | First sync | Entries loaded | `timed out` in the log | RSS synced | "
      "RSS after load | Peak RSS | Cached Check/s per core | vs empty set | Allowed |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        sync = f"{r['sync_s']:.2f} s" if r["synced"] else f"**never** (in {doc['sync_timeout_s']} s)"
        w(f"| {r['entries']:,} | {r['redis_used_memory'] / 2**20:.0f} MiB | {sync} | {r['set_size_seen']:,.0f} | "
          f"{r['timeout_lines']} | {kib(r['rss_kib_synced'])} | {kib(r['rss_kib_after_load'])} | {kib(r['hwm_kib'])} | "
          f"{r['per_core']:,.0f} | {r['per_core'] / base:.0%} | {r['allow_fraction']:.0%} |" if base else
          f"| {r['entries']:,} | | {sync} | | | | | | {r['per_core']:,.0f} | | |")
    w("")
    rec = [r for r in rows if r.get("reconnect")]
    if rec:
        w("After a reconnect: with the set synced, Checks run at a steady 2,000/s (8 connections, one request "
          "each) while Redis drops the verifier's connections (`CLIENT KILL`, as on a Redis restart or failover). "
          "*Reconnected* = until the verifier has its connections back; *settled* = until it has run no Redis "
          "command (other than PING) for a second; *pulled* = what Redis sent it meanwhile. The Check latencies "
          "are h2load's (client side, on the CPU Redis uses); *decided in over 1 / 5 ms* counts the Checks of the "
          "window that the verifier itself took that long to decide (its `decision_duration_seconds` histogram, "
          "from the request read to the answer), out of all it decided.\n")
        head = ("| Revoked entries | Slowest Check | Check p50 / p99 | Decided in over 1 / 5 ms | Reconnected | "
                "Settled | Pulled from Redis | Commands it ran |\n|---:|---:|---:|---:|---:|---:|---:|---|")
        w(head)
        def t(v):
            return f"{v:.1f} s" if v is not None else "not within the limit"
        for which, intro in (("reconnect", None),
                             ("full_resync", "After a forced full resync: the same, with the revocation epoch "
                              "deleted first, so the reconnect reloads the whole set (as after a data loss).\n")):
            got = [r for r in rec if r.get(which)]
            if not got:
                continue
            if intro:
                w(intro)
                w(head)
            for r in got:
                x = r[which]
                cmds = ", ".join(f"{k.replace('|', ' ')} x{n}" for k, n in sorted(x.get("commands", {}).items())) \
                    or "none"
                over = x.get("decided_over")
                slow = (f"{over['0.001']:,.0f} / {over['0.005']:,.0f} of {over['checks']:,.0f}" if over
                        else "not measured")
                w(f"| {r['entries']:,} | {x['max_us'] / 1000:.1f} ms | {x['p50_us'] / 1000:.2f} / "
                  f"{x['p99_us'] / 1000:.2f} ms | {slow} | {t(x['reconnected_s'])} | {t(x['settled_s'])} | "
                  f"{x['pulled_bytes'] / 2**20:.1f} MiB | {cmds} |")
            w("")


def routes(doc: dict, w) -> None:
    w("### Verifier against the number of routes\n")
    w(status(doc))
    w("A generated verifier TOML with N `[[routes]]`: *hosts* = each its own host and resource; *paths* = one "
      "host, a catch-all and N-1 resources `/t<i>/mcp`. The Check (gRPC, cached RS256 token) matches the last "
      "route of the file. Routes are looked up in an index built at load (host, then a path-segment trie). "
      f"Median of {doc['rounds']} interleaved round(s); *vs 1 route* is against the same shape's 1-route run.\n")
    sizes = doc["sizes"]
    w("| Shape | Routes | Cached Check/s per core | vs 1 route | RSS |")
    w("|---|---:|---:|---:|---:|")
    firsts: dict[str, float] = {}
    for key, rs in sizes.items():
        shape, _, n = key.rpartition(":")
        pc = med([r["per_core"] for r in rs])
        first = firsts.setdefault(shape, pc)
        w(f"| {shape or 'hosts'} | {int(n):,} | {pc:,.0f}{spread([r['per_core'] for r in rs])} | {pc / first:.0%} | "
          f"{kib(med([r['rss_kib'] for r in rs]))} |")
    w("")


def cache(doc: dict, w) -> None:
    w("### Verifier token cache\n")
    w(status(doc))
    w("A verifier whose cache holds every token; after a warm-up on 200 tokens, N distinct EdDSA tokens go "
      "through ForwardAuth `/auth` once each (pipelined HTTP/1.1). Bytes per token = RSS growth / N. The last row "
      "is the default capacity (10,000) filled.\n")
    w("| Distinct tokens | Cache capacity | Allowed | RSS before | RSS after | Bytes per cached token |")
    w("|---:|---:|---:|---:|---:|---:|")
    for r in doc["sizes"]:
        cap = f"{r['capacity']:,}" + (" (default)" if r["default_capacity"] else "")
        w(f"| {r['tokens']:,} | {cap} | {r['allowed']:,} | {kib(r['rss_kib_before'])} | {kib(r['rss_kib_after'])} | "
          f"{r['bytes_per_token']:,.0f} B |")
    w("")


def render(r: dict, command: str) -> str:
    L: list[str] = []
    w = L.append
    m = r["machine"]
    w(BEGIN)
    w("## Cost at scale\n")
    w("Measured by `benches/scale.py` (the issuer and the verifier as release binaries, real redis-server, "
      "node `oidc-provider`, Envoy, h2load). Regenerate with:\n")
    w(f"```sh\n{command}\n```\n")
    w(f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}. Servers on CPU 0, load on CPU 1; CPU "
      "figures are each process's utime + stime from /proc. Compare rows within a table: every ratio is "
      "measured in one run.\n")
    sections = r["sections"]
    for name, fn in (("issuer", issuer), ("envoy", envoy), ("revocation", revocation), ("routes", routes),
                     ("cache", cache)):
        if name in sections:
            fn(sections[name], w)
        else:
            w(f"### {name.capitalize()}\n\nNot measured yet: `benches/run-scale --only {name}`.\n")
    w(END)
    return "\n".join(L) + "\n"


def splice(existing: str, block: str) -> str:
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + block + ("\n" + tail if tail else "")
    return existing.rstrip("\n") + ("\n\n" if existing.strip() else "") + block


def main(results_path: str, out_path: str, command: str) -> None:
    r = json.loads(Path(results_path).read_text())
    out = Path(out_path)
    existing = out.read_text() if out.exists() else ""
    out.write_text(splice(existing, render(r, command)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
