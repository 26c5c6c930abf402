"""A gRPC server without generated code (bytes in, bytes out) for the router's gRPC
tests: `server.py NAME FAIL_EVERY [CERT KEY]` serves on a free port of 127.0.0.1 and
prints it (with CERT and KEY, PEM files: over TLS, which offers ALPN h2).

- /test.Echo/Say (unary): answers `NAME:` + the request; every FAIL_EVERY-th call
  (0: none) fails with INTERNAL, its details starting with NAME; the request `cancel`
  is answered CANCELLED;
- /test.Echo/Slow (unary): answers after 3 s;
- /test.Echo/Chat (bidirectional streaming): answers each message with `NAME:` + it,
  as it comes;
- /test.Echo/Count (server streaming): the request is `N` or `N,MS`; answers N messages
  `NAME:i:` + 1000 bytes, MS milliseconds apart.
"""

import sys
import threading
import time
from concurrent import futures

import grpc

name, fail_every, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = 0
lock = threading.Lock()


def say(request, context):
    global calls
    if request == b"cancel":
        context.abort(grpc.StatusCode.CANCELLED, f"{name} cancels")
    with lock:
        calls += 1
        n = calls
    if fail_every and n % fail_every == 0:
        context.abort(grpc.StatusCode.INTERNAL, f"{name} failed call {n}")
    return name.encode() + b":" + request


def slow(request, context):
    time.sleep(3)
    return request


def chat(requests, context):
    for request in requests:
        yield name.encode() + b":" + request


def count(request, context):
    n, _, ms = request.decode().partition(",")
    for i in range(int(n)):
        if ms and i:
            time.sleep(int(ms) / 1000)
        yield f"{name}:{i}:".encode() + b"x" * 1000


handler = grpc.method_handlers_generic_handler(
    "test.Echo",
    {
        # No (de)serializers: the messages are the bytes themselves.
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    },
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
if tls:
    cert, key = (open(path, "rb").read() for path in tls)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
