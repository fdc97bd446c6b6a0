#!/usr/bin/env python3
"""Counts the round trips clients make to PostgreSQL, by relaying them.

    python3 scripts/pg-roundtrips.py 15432 127.0.0.1:5432

listens on 127.0.0.1:15432 and relays every connection to the server. It reads the frontend
protocol on the way: each simple query ('Q') and each Sync ('S', the end of an extended-query
pipeline) is one trip the client waits for. Send it SIGUSR1 to print the counts so far and reset
them; SIGINT prints them and exits. Point the program under test at the relay's port (e.g.
BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:15432/kenar_bench) and divide by the work done.
Used for the round-trip figures in docs/benchmarks.md; not a load-test tool (it is slow).
"""
import asyncio
import collections
import signal
import struct
import sys

counts = collections.Counter()


def report(reset):
    trips = counts["Q"] + counts["S"]
    detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"round trips: {trips} ({detail})", flush=True)
    if reset:
        counts.clear()


async def pipe_frontend(reader, writer):
    """Client → server: forwards bytes and counts messages after the startup packet."""
    buffer = b""
    started = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        buffer += data
        while True:
            if not started:
                if len(buffer) < 4:
                    break
                (length,) = struct.unpack("!I", buffer[:4])
                if len(buffer) < length:
                    break
                code = struct.unpack("!I", buffer[4:8])[0] if length >= 8 else 0
                buffer = buffer[length:]
                # An SSL or GSS request is answered 'N' and followed by the real startup packet.
                started = code not in (80877103, 80877104)
                continue
            if len(buffer) < 5:
                break
            kind = chr(buffer[0])
            (length,) = struct.unpack("!I", buffer[1:5])
            if len(buffer) < 1 + length:
                break
            counts[kind] += 1
            buffer = buffer[1 + length:]
        await writer.drain()
    writer.close()


async def pipe(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def main():
    port = int(sys.argv[1])
    host, upstream_port = sys.argv[2].rsplit(":", 1)

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(host, int(upstream_port))
        await asyncio.gather(
            pipe_frontend(client_reader, server_writer),
            pipe(server_reader, client_writer),
            return_exceptions=True,
        )

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: report(True))
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"relaying 127.0.0.1:{port} to {host}:{upstream_port}", flush=True)
    async with server:
        await server.serve_forever()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    report(False)
