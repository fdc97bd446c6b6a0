#!/usr/bin/env python3
"""Slow-header clients against a running kenar-chat: N connections each send a request line and
then one header line every 5 s, never finishing the head. Prints how many the server closed and
when. The header-read timeout (KENAR_HEADER_READ_TIMEOUT_SECS, 10 s) should close them all.

    kenar-chat sandbox --bind 127.0.0.1:18080 &
    python3 scripts/slow-headers.py 18080 300
"""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    socks.append(s)
start = time.time()
closed_at = {}
while time.time() - start < 30 and len(closed_at) < n:
    for i, s in enumerate(socks):
        if i in closed_at:
            continue
        try:
            data = s.recv(1024)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                closed_at[i] = time.time() - start
                continue
        except BlockingIOError:
            pass
        except OSError:
            closed_at[i] = time.time() - start
            continue
        try:
            s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            closed_at[i] = time.time() - start
    time.sleep(5)
times = sorted(closed_at.values())
if times:
    print(f"{len(times)}/{n} closed within {time.time() - start:.0f}s; first {times[0]:.1f}s last {times[-1]:.1f}s")
else:
    print(f"0/{n} closed within {time.time() - start:.0f}s")
