"""MCP server on the legacy SDK (PyPI mcp 1.x, FastMCP; sessions): streamable HTTP
on 127.0.0.1:PORT at /mcp, tool `whoami` answering NAME. Port 0 takes any
free port; the bound port is written to READY_FILE as {"port": N}.

usage: server_legacy.py PORT NAME READY_FILE"""
import sys

from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings

from serve_on_port import serve


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
    serve(app, port, ready_file)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
