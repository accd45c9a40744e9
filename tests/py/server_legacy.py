"""MCP server on the legacy SDK (PyPI mcp 1.x, FastMCP; sessions): streamable HTTP
on 127.0.0.1:PORT at /mcp, tool `whoami` answering NAME. Port 0 takes any
free port; the bound port is written to READY_FILE as {"port": N}.

usage: server_legacy.py PORT NAME READY_FILE"""
import json
import os
import socket
import sys

import anyio
import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings


def main(port: int, name: str, ready_file: str) -> None:
    server = FastMCP(
        name,
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    @server.tool()
    def whoami() -> str:
        """Name of this server instance."""
        return name

    app = server.streamable_http_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # Listening before the ready file exists: early connections queue.
    sock.listen(128)
    with open(ready_file + ".tmp", "w") as f:
        json.dump({"port": sock.getsockname()[1]}, f)
    os.replace(ready_file + ".tmp", ready_file)
    config = uvicorn.Config(app, log_level="warning")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
