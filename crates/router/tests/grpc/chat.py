"""A bidirectional stream for the router's gRPC tests: `chat.py HOST:PORT N` sends N
messages on one /test.Echo/Chat call, each only once the answer to the one before
came back (so neither direction can be held until the other ends), and prints
`ok NAME N` when every answer came in order from the server NAME.
"""

import queue
import sys

import grpc

target, n = sys.argv[1], int(sys.argv[2])
channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
turns = queue.Queue()


def requests():
    for i in range(n):
        yield f"message {i}".encode()
        turns.get(timeout=10)


names = set()
answers = channel.stream_stream("/test.Echo/Chat")(requests(), timeout=30)
for i, answer in enumerate(answers):
    name, _, text = answer.decode().partition(":")
    assert text == f"message {i}", answer
    names.add(name)
    turns.put(None)
    count = i + 1
assert len(names) == 1, names
print(f"ok {names.pop()} {count}", flush=True)
