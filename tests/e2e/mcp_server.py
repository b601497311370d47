"""A small MCP server (official Python SDK, streamable HTTP) with no auth of
its own: in the tests it sits behind nginx + the verifier, and reports the
identity headers the proxy set, so tests can see who the gateway let in.

    python mcp_server.py --port 8000   # serves /mcp and /healthz on 127.0.0.1
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

server = MCPServer(name="mcpgate-e2e-backend")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def whoami(ctx: Context) -> dict:
    """The identity headers the gateway forwarded, and whether a token leaked through."""
    h = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    return {
        "user_id": h.get("x-user-id"),
        "user_name": h.get("x-user-name"),
        "email": h.get("x-user-email"),
        "scopes": h.get("x-user-scopes"),
        "client_id": h.get("x-client-id"),
        "authorization_forwarded": "authorization" in h,
    }


@server.custom_route("/healthz", methods=["GET"])
async def healthz(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
