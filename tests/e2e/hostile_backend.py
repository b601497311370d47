"""What an attacker aims at behind the gateway: the official MCP Python SDK
server with a dangerous tool, behind a path-normalising front.

Every request's path is normalised the way a lenient backend does (full
percent-decoding, `\\` as `/`, slashes merged, dot-segments resolved); the
normalised path is then served: `/mcp` by the SDK's streamable HTTP app
(tools `delete_repo`, `add`, `whoami`), anything else by an echo of the
served path and the headers received. `delete_repo` counts its calls at
`/calls`, so a test can tell whether a refused request ran it.

    python hostile_backend.py --port 8000
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import unquote

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(name="mcpgate-e2e-hostile")
CALLS = {"delete_repo": 0}


@server.tool()
def delete_repo(repo: str = "all") -> str:
    """The tool the policy reserves for mcp:admin."""
    CALLS["delete_repo"] += 1
    return f"deleted {repo}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def whoami(ctx: Context) -> dict:
    """The identity headers the gateway forwarded."""
    h = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return {k: v for k, v in h.items() if k.startswith("x") or k == "authorization"}


def normalise(raw: str) -> str:
    path = unquote(raw.split("?", 1)[0]).replace("\\", "/")
    stack: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if stack:
                stack.pop()
            continue
        stack.append(seg)
    return "/" + "/".join(stack)


mcp_app = server.streamable_http_app(host="127.0.0.1", stateless_http=True, json_response=True)


async def _json(send, status: int, doc: dict) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return await mcp_app(scope, receive, send)
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    served = normalise(raw)
    if served == "/calls":
        return await _json(send, 200, CALLS)
    if served == "/mcp" or served.startswith("/mcp/"):
        scope = dict(scope, path=served, raw_path=served.encode())
        return await mcp_app(scope, receive, send)
    headers: dict[str, list[str]] = {}
    for k, v in scope["headers"]:
        headers.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
    await _json(send, 200, {"served": served, "raw": raw, "headers": headers})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
