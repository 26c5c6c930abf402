"""A WebSocket echo server: answers each message with `<name>:<message>`.
Prints its port, then serves until killed."""
import sys
from websockets.sync.server import serve

name = sys.argv[1]


def echo(ws):
    for message in ws:
        ws.send(f"{name}:{message}")


with serve(echo, "127.0.0.1", 0) as server:
    print(server.socket.getsockname()[1], flush=True)
    server.serve_forever()
