"""MCP server on the current SDK (PyPI mcp 2.x, MCPServer): streamable HTTP
on 127.0.0.1:PORT at /mcp, tool `whoami` answering NAME. Port 0 takes any
free port; the bound port is written to READY_FILE as {"port": N}.

usage: server_modern.py PORT NAME READY_FILE"""
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from serve_on_port import serve


def main(port: int, name: str, ready_file: str) -> None:
    server = MCPServer(name)

    @server.tool()
    def whoami() -> str:
        """Name of this server instance."""
        return name

    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    serve(app, port, ready_file)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
