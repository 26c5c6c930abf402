"""Reads one event stream from 127.0.0.1:PORT and prints, per event, how long after it
was written (by source.py, same CLOCK_MONOTONIC) it arrived, in microseconds."""
import socket
import sys
import time

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
buf = b""
while True:
    data = s.recv(65536)
    now = time.monotonic_ns()
    if not data:
        break
    buf += data
    while b"\n\n" in buf:
        line, _, buf = buf.partition(b"\n\n")
        at = line.rfind(b"data: ")
        if at >= 0:
            print((now - int(line[at + 6:].split(b"\r")[0])) // 1000)
    if buf.endswith(b"0\r\n\r\n") and b"data: " not in buf:
        break
