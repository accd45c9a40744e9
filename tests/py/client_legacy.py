"""MCP client on the legacy SDK (PyPI mcp<2): initialize (session id),
list tools, call `whoami` N times on the same session. One JSON object per
line on stdout, each call with the session id the client holds."""
import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError


def out(**kw):
    print(json.dumps(kw), flush=True)


async def main(url: str, n: int) -> int:
    async with streamable_http_client(url) as (read, write, get_session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out(event="connected", protocol_version=init.protocolVersion, session_id=get_session_id())
            tools = await session.list_tools()
            out(event="tools", tools=sorted(t.name for t in tools.tools))
            for i in range(n):
                try:
                    r = await session.call_tool("whoami", {})
                except McpError as e:
                    out(event="call_error", i=i, code=e.error.code, message=e.error.message, session_id=get_session_id())
                    return 1
                text = "".join(c.text for c in r.content if c.type == "text")
                out(event="call", i=i, is_error=bool(r.isError), text=text, session_id=get_session_id())
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
