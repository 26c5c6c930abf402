"""A WebSocket client through the router: sends N messages, checks each echo comes
back from one server, prints `half <server>` midway and waits for a line on stdin
before the second half; prints `done <server> <count>`."""
import sys
from websockets.sync.client import connect

url, user, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with connect(url, additional_headers={"X-User-Id": user}, open_timeout=10) as ws:
    server = None
    for i in range(n):
        if i == n // 2:
            print(f"half {server}", flush=True)
            sys.stdin.readline()
        ws.send(f"m{i}")
        name, _, echoed = ws.recv(timeout=10).partition(":")
        assert echoed == f"m{i}", (echoed, i)
        server = server or name
        assert name == server, f"message {i} answered by {name}, not {server}"
    print(f"done {server} {n}", flush=True)
