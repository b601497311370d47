"""The deploy/ examples, made runnable on free loopback ports.

Each example in deploy/ is written for fixed default addresses (the verifier
on 127.0.0.1:8081 HTTP / :9191 gRPC, the MCP server on 127.0.0.1:3000, the
proxy on 127.0.0.1:8000 or :10000). The tests run those very files with
only these addresses (and, for nginx, its runtime paths) substituted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness import REPO

DEPLOY = REPO / "deploy"


@dataclass
class Ports:
    proxy: int
    verifier_http: int
    verifier_grpc: int
    backend: int


def _hostport(url_or_hostport: str) -> int:
    return int(url_or_hostport.rsplit(":", 1)[1].rstrip("/"))


def ports(proxy: int, verifier_http: str, verifier_grpc: str, backend_url: str) -> Ports:
    return Ports(proxy, _hostport(verifier_http), _hostport(verifier_grpc) if verifier_grpc else 0,
                 _hostport(backend_url))


def _swap(text: str, pairs: dict[str, str]) -> str:
    # One pass, so a substituted port can never be substituted again.
    rx = re.compile("|".join(re.escape(k) for k in sorted(pairs, key=len, reverse=True)))
    return rx.sub(lambda m: pairs[m.group(0)], text)


def envoy(p: Ports) -> str:
    text = (DEPLOY / "envoy" / "envoy.yaml").read_text()
    return _swap(text, {
        "port_value: 10000": f"port_value: {p.proxy}",
        "port_value: 9191": f"port_value: {p.verifier_grpc}",
        "port_value: 8081": f"port_value: {p.verifier_http}",
        "port_value: 3000": f"port_value: {p.backend}",
    })


def _addresses(text: str, p: Ports) -> str:
    return _swap(text, {
        "127.0.0.1:8000": f"127.0.0.1:{p.proxy}",
        "127.0.0.1:8081": f"127.0.0.1:{p.verifier_http}",
        "127.0.0.1:9191": f"127.0.0.1:{p.verifier_grpc}",
        "127.0.0.1:3000": f"127.0.0.1:{p.backend}",
    })


def traefik(p: Ports, dynamic_path: Path) -> tuple[str, str]:
    """(static, dynamic) configuration texts; the static one names
    `dynamic_path` as its file provider."""
    static = (DEPLOY / "traefik" / "traefik.yml").read_text()
    static = _addresses(static, p).replace("filename: deploy/traefik/dynamic.yml",
                                           f"filename: {dynamic_path}")
    dynamic = _addresses((DEPLOY / "traefik" / "dynamic.yml").read_text(), p)
    return static, dynamic


def caddy(p: Ports) -> str:
    return _addresses((DEPLOY / "caddy" / "Caddyfile").read_text(), p)


def nginx(p: Ports, prefix: Path) -> str:
    """deploy/nginx/nginx.conf with its addresses substituted and its
    runtime files (pid, logs, temp dirs) under `prefix`."""
    text = _addresses((DEPLOY / "nginx" / "nginx.conf").read_text(), p)
    main = [f"pid {prefix}/nginx.pid;", f"error_log {prefix}/logs/error.log info;"]
    if os.geteuid() == 0:
        main.insert(0, "user root;")
    http = [f"access_log {prefix}/logs/access.log;"] + [
        f"{kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    text = text.replace("worker_processes 1;", "\n".join(main + ["worker_processes 1;"]), 1)
    return text.replace("http {", "http {\n    " + "\n    ".join(http), 1)
