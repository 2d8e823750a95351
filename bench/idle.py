#!/usr/bin/env python3
"""bench/idle.py PORT N: opens N keep-alive connections to 127.0.0.1:PORT,
sends one request on each (no Authorization: every proxy answers 401 itself),
reads each answer, prints "ready N" and holds the connections open until its
standard input closes or it is killed. Used by bench/run.sh for the
idle-connection memory row. Every wait is bounded."""

import asyncio
import sys

REQUEST = b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n"


async def one(port, held):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), 10)
    writer.write(REQUEST)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await asyncio.wait_for(reader.readexactly(length), 10)
    held.append(writer)


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    held = []
    batch = 200
    for start in range(0, n, batch):
        results = await asyncio.gather(
            *(one(port, held) for _ in range(min(batch, n - start))),
            return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            print(f"failed after {len(held)} connections: {errors[0]!r}", flush=True)
            return
    print(f"ready {len(held)}", flush=True)
    loop = asyncio.get_running_loop()
    # Hold until stdin closes (or a kill), at most 10 minutes.
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), 600)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
