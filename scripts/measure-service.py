#!/usr/bin/env python3
"""Measures kao as a service: resident memory over a long run with clients
(two steady ones, one taking JPEGs, and one connecting, asking for the
status and leaving every 20 ms), then the time from SIGTERM to exit.

    scripts/measure-service.py [SECONDS]      (default 600; needs `make build`)
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 600
tmp = tempfile.mkdtemp(prefix="kao-measure-")
sock = os.path.join(tmp, "kao.sock")
log = open(os.path.join(tmp, "serve.log"), "w")
kao = subprocess.Popen([os.path.join(root, "target/release/kao"), "serve", "--socket", sock],
                       cwd=root, stdout=subprocess.DEVNULL, stderr=log)
while not os.path.exists(sock):
    if kao.poll() is not None:
        sys.exit(f"kao exited with {kao.returncode}; see {tmp}/serve.log")
    time.sleep(0.1)
time.sleep(1)

stop = False
counts = {"frames": 0, "connects": 0}


def steady(jpeg):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(json.dumps({"type": "subscribe", "jpeg": jpeg}).encode() + b"\n")
    lines = s.makefile("rb")
    while not stop:
        line = lines.readline()
        if not line:
            return
        if line.startswith(b'{"type":"frame"'):
            counts["frames"] += 1


def churn():
    while not stop:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b'{"type":"status"}\n')
        s.recv(100)
        s.close()
        counts["connects"] += 1
        time.sleep(0.02)


def rss_kib():
    with open(f"/proc/{kao.pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


for t in [threading.Thread(target=steady, args=(j,), daemon=True) for j in (False, True)] + \
         [threading.Thread(target=churn, daemon=True)]:
    t.start()
start = time.time()
while True:
    elapsed = time.time() - start
    print(f"{elapsed:6.0f} s  RSS {rss_kib()} KiB  frames {counts['frames']}  "
          f"connections {counts['connects']}", flush=True)
    if elapsed >= seconds:
        break
    time.sleep(min(30, seconds - elapsed))
stop = True
t0 = time.time()
kao.send_signal(signal.SIGTERM)
code = kao.wait()
print(f"SIGTERM to exit: {(time.time() - t0) * 1000:.0f} ms, exit code {code}, "
      f"socket left: {os.path.exists(sock)}")
