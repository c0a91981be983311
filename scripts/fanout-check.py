#!/usr/bin/env python3
"""What connected clients cost the daemon: runs `kao serve` on a video,
first with no client, then with N clients reading every message over the
Unix socket, and prints frames/s, the daemon's CPU time
per frame and its resident memory over the run. Standard library only.

  scripts/fanout-check.py [--clients 32] [--seconds 30] [--video FILE]

The video plays at its own rate (as a camera would), faster than kao
processes it on a small machine, so the pipeline is always busy.
frames/s come from the daemon's own `pipeline` log lines; on a machine
shared with other work they move by more than the clients cost, so the CPU
time per frame (from /proc) is printed too. Memory is sampled every
2 seconds: it should stay flat. Needs `make build` first.
"""
import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KAO = os.path.join(ROOT, "target", "release", "kao")
USER_HZ = 100  # clock ticks per second of /proc/<pid>/stat on Linux
FPS_LINE = re.compile(r"fps=([0-9.]+)")
P50_LINE = re.compile(r"p50_ms=([0-9.]+)")
P99_LINE = re.compile(r"p99_ms=([0-9.]+)")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / USER_HZ


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def reader(path, counts, k, stop):
    r, w = await asyncio.open_unix_connection(path)
    try:
        while not stop.is_set():
            line = await r.readline()
            if not line:
                break
            counts[k] += 1
    finally:
        w.close()


async def phase(pid, log, clients, seconds, socket_path, samples):
    """Runs one phase; returns (fps values logged, CPU s, messages read)."""
    stop = asyncio.Event()
    counts = [0] * clients
    tasks = [asyncio.create_task(reader(socket_path, counts, k, stop)) for k in range(clients)]
    await asyncio.sleep(1.0)  # connections settle
    start_lines = len(open(log).read().splitlines())
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(2.0)
        samples.append((round(time.monotonic(), 1), clients, rss_mib(pid)))
    cpu = cpu_seconds(pid) - cpu0
    lines = open(log).read().splitlines()[start_lines:]
    summaries = [l for l in lines if " pipeline" in l and FPS_LINE.search(l)]
    fps = [float(FPS_LINE.search(l).group(1)) for l in summaries]
    p50 = [float(m.group(1)) for l in summaries if (m := P50_LINE.search(l))]
    p99 = [float(m.group(1)) for l in summaries if (m := P99_LINE.search(l))]
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return fps, cpu, sum(counts), p50, p99


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--video", default="/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
    args = ap.parse_args()
    if not os.access(KAO, os.X_OK):
        sys.exit(f"fanout-check: {KAO} is missing; run `make build`")

    work = tempfile.mkdtemp(prefix="kao-fanout-")
    socket_path = os.path.join(work, "kao.sock")
    config = os.path.join(work, "kao.toml")
    log = os.path.join(work, "kao.log")
    with open(config, "w") as f:
        f.write(f'[source]\nuri = "{args.video}"\nrealtime = true\nloop_at_end = true\n'
                f'[publish]\nsocket = "{socket_path}"\n[log]\nsummary_interval_s = 2.0\n')
    with open(log, "w") as out:
        daemon = subprocess.Popen([KAO, "serve", "--config", config], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=out, env={**os.environ, "KAO_LOG": "info"})
    try:
        for _ in range(100):
            if os.path.exists(socket_path):
                break
            if daemon.poll() is not None:
                sys.exit(f"fanout-check: kao serve exited:\n{open(log).read()}")
            time.sleep(0.1)
        time.sleep(2.0)  # past the first frames
        samples = []
        idle = asyncio.run(phase(daemon.pid, log, 0, args.seconds, socket_path, samples))
        busy = asyncio.run(phase(daemon.pid, log, args.clients, args.seconds, socket_path, samples))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()

    def summary(name, result):
        fps, cpu, messages, p50, p99 = result
        mean = sum(fps) / len(fps) if fps else float("nan")
        frames = mean * args.seconds
        avg = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
        print(f"{name:<12} {mean:6.2f} frames/s (from {len(fps)} summaries), "
              f"daemon CPU {1000 * cpu / frames:6.1f} ms per frame, {messages} messages read by clients, "
              f"capture-to-publish p50 {avg(p50):.1f} ms p99 {avg(p99):.1f} ms (mean of the summaries)")
        return mean, 1000 * cpu / frames

    print(f"kao serve on {args.video}, at its own rate (25 frames/s); load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")
    a = summary("no clients", idle)
    b = summary(f"{args.clients} clients", busy)
    print(f"frames/s with {args.clients} clients: {100 * (b[0] / a[0] - 1):+.1f} %; "
          f"CPU per frame: {100 * (b[1] / a[1] - 1):+.1f} %")
    rss = [s[2] for s in samples]
    quarters = [rss[min(len(rss) - 1, len(rss) * q // 4)] for q in range(5)]
    print(f"resident memory (MiB) at 0, 1/4, 1/2, 3/4 and all of the run: "
          f"{', '.join(f'{r:.1f}' for r in quarters)}; max {max(rss):.1f} over {len(rss)} samples")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
