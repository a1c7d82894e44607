"""A slow HTTP upstream for the memory figures: answers every request with a 200 after
SECONDS, one request per connection, on a free port of 127.0.0.1, which it prints first.
Stdlib only, so every memory script can start it in a process of its own.

Usage: slow_upstream.py SECONDS
"""

import asyncio
import sys


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await asyncio.sleep(float(sys.argv[1]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=16384)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
