"""An event-stream upstream: each GET gets COUNT server-sent events, one every
INTERVAL_MS, each carrying the CLOCK_MONOTONIC nanoseconds at which it was written
(the clock every process on the machine shares)."""
import socket
import sys
import threading
import time

port, count, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000


def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for _ in range(count):
            time.sleep(interval)
            event = b"data: %d\n\n" % time.monotonic_ns()
            conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        conn.sendall(b"0\r\n\r\n")


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
