"""Serving an ASGI app for the SDK test servers: bind 127.0.0.1:PORT (0 for
any free port), write the bound port to READY_FILE as {"port": N}, serve.
Shared by server_legacy.py and server_modern.py (each runs in its own venv;
this uses only the standard library, uvicorn and anyio, which both have)."""
import json
import os
import socket

import anyio
import uvicorn


def serve(app, port: int, ready_file: str) -> None:
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
