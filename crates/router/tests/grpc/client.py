"""A gRPC client for the router's gRPC tests: `client.py HOST:PORT CALLS USERS STREAM`
makes CALLS unary calls, user `user-<i % USERS>` in the `x-user-id` metadata (the
route's sticky header), then one server-streaming call (user `streamer`) asking for
STREAM (`N` messages, or `N,MS`: MS milliseconds apart); prints `streaming` once its
first message came, then one JSON line: per version the calls that succeeded and
those that failed with INTERNAL, any other status seen, the users who got both
versions, and what the streaming call received.
"""

import json
import sys

import grpc

target, calls, users, stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# Straight to the router, whatever proxy the environment names.
channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
say = channel.unary_unary("/test.Echo/Say")
count = channel.unary_stream("/test.Echo/Count")

versions = {}
other = []
per_user = {}
for i in range(calls):
    user = f"user-{i % users}"
    try:
        answer = say(b"hi", metadata=(("x-user-id", user),), timeout=10)
        version, outcome = answer.decode().split(":")[0], "ok"
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.INTERNAL:
            other.append(f"{e.code().name}: {e.details()}")
            continue
        version, outcome = e.details().split()[0], "internal"
    tally = versions.setdefault(version, {"ok": 0, "internal": 0})
    tally[outcome] += 1
    per_user.setdefault(user, set()).add(version)

messages = count(stream.encode(), metadata=(("x-user-id", "streamer"),), timeout=30)
first = next(messages)
print("streaming", flush=True)
messages = [first, *messages]
stream_versions = sorted({m.decode().split(":")[0] for m in messages})
whole = all(
    m == f"{stream_versions[0]}:{i}:".encode() + b"x" * 1000 for i, m in enumerate(messages)
)
print(
    json.dumps(
        {
            "versions": versions,
            "other": other,
            "mixed_users": sorted(u for u, v in per_user.items() if len(v) > 1),
            "stream": {"messages": len(messages), "versions": stream_versions, "whole": whole},
        }
    ),
    flush=True,
)
