"""Open N keep-alive connections to a proxy, one request each, and hold them idle.

Usage: idle.py HOST PORT N tls|plain
Prints "ready" once every connection has had its answer, then waits for stdin to close.
"""
import asyncio
import ssl
import sys


async def one(host, port, context, sem, held):
    async with sem:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname="bench.test" if context else None
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        held.append((reader, writer))


async def main():
    host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    context = None
    if mode == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    sem = asyncio.Semaphore(200)
    held = []
    await asyncio.gather(*(one(host, port, context, sem, held) for _ in range(n)))
    print("ready", len(held), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
