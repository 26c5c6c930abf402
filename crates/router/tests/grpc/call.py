"""One unary call for the router's gRPC tests: `call.py HOST:PORT METHOD REQUEST
[DEADLINE_S]` calls /test.Echo/METHOD and prints `ok <answer>` or the status code's
name.
"""

import sys

import grpc

target, method, request = sys.argv[1:4]
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else None
channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
try:
    answer = channel.unary_unary(f"/test.Echo/{method}")(request.encode(), timeout=timeout)
    print(f"ok {answer.decode()}", flush=True)
except grpc.RpcError as e:
    print(e.code().name, flush=True)
