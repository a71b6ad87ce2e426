#!/usr/bin/env python3
"""Open N chat clients (each sends a nickname line), hold them idle, print the server's RSS.

usage: chat_idle.py PORT PID N HOLD_SECONDS   ->  "RESULT held=… rss_kib=…"
Bounded: connects in batches of 500, holds HOLD_SECONDS, then closes everything.
"""
import resource
import socket
import sys
import time

port, pid, n, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"idle%d\n" % i)
    socks.append(s)
time.sleep(hold)
rss = 0
with open("/proc/%d/status" % pid) as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
alive = sum(1 for s in socks if s.fileno() >= 0)
print("RESULT held=%d rss_kib=%d" % (alive, rss))
for s in socks:
    s.close()
