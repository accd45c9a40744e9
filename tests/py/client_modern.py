"""MCP client on the current SDK (PyPI mcp 2.x): connects to URL (it probes
server/discover and speaks 2026-07-28 when offered), lists tools, calls
`whoami` N times. One JSON object per line on stdout."""
import json
import sys

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError


def out(**kw):
    print(json.dumps(kw), flush=True)


async def main(url: str, n: int) -> int:
    # cache=None: every tools/list really goes to the server.
    async with Client(url, cache=None, read_timeout_seconds=30) as client:
        out(event="connected", protocol_version=client.protocol_version)
        tools = await client.list_tools()
        out(event="tools", tools=sorted(t.name for t in tools.tools))
        for i in range(n):
            try:
                r = await client.call_tool("whoami", {})
            except MCPError as e:
                out(event="call_error", i=i, code=e.code, message=str(e))
                return 1
            text = "".join(c.text for c in r.content if getattr(c, "type", None) == "text")
            out(event="call", i=i, is_error=bool(r.is_error), text=text)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
