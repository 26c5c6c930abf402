"""Calls the router's gRPC tests count as the client's: `cancel.py HOST:PORT` makes a
call the server answers CANCELLED, and one it cancels itself while the server is
still working on it; prints `done`.
"""

import sys
import time

import grpc

channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
try:
    channel.unary_unary("/test.Echo/Say")(b"cancel", timeout=10)
    sys.exit("the server did not cancel")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.CANCELLED, e
call = channel.unary_unary("/test.Echo/Slow").future(b"x", timeout=10)
time.sleep(0.5)
call.cancel()
print("done", flush=True)
