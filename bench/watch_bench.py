#!/usr/bin/env python3
"""Watch-folder figures (issue 4), driven by bench/watch.sh.

latency     a 12 MP JPEG is written into a watched folder and closed; the clock stops when its
            thumbnail is renamed into the output folder (seen with inotify). One file at a time,
            so this is latency, not queueing. Compared with each execution's own duration from
            the history (the processing time of the image itself).
throughput  N photos moved into a watched folder at once, until the last thumbnail exists,
            against `pixelflow run` on the same files (both: thumbnail workflow, 2 jobs, a fresh
            data dir, so nothing is cached).
catchup     a folder of N files that the rule's workflow already processed: time from the
            service's start until it has looked at every one (`watch status` skipped == N),
            and the service's peak RSS.
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080


class Inotify:
    """The few calls of Linux's inotify we need, through libc (no extra package)."""

    def __init__(self, folder: Path):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init()
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init")
        if self.libc.inotify_add_watch(self.fd, str(folder).encode(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self.buffer = b""

    def names(self):
        """Blocks until at least one event; returns the file names it carries."""
        data = os.read(self.fd, 65536)
        out, i = [], 0
        while i + 16 <= len(data):
            _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, i)
            name = data[i + 16 : i + 16 + length].rstrip(b"\0").decode()
            out.append(name)
            i += 16 + length
        return out


def run(bin_, data, *args, check=True, **kw):
    return subprocess.run([bin_, "--data-dir", str(data), *args], check=check, capture_output=True, text=True, **kw)


def with_comment(jpeg: bytes, tag: str) -> bytes:
    """The same image with a COM segment after SOI: distinct content, same pixels."""
    assert jpeg[:2] == b"\xff\xd8"
    payload = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def pct(values, p):
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def start_service(bin_, data, log):
    env = dict(os.environ, PIXELFLOW_LOG="warn")
    return subprocess.Popen([bin_, "--data-dir", str(data), "watch", "run"], stdout=subprocess.DEVNULL, stderr=log, env=env)


def stop_service(proc):
    proc.terminate()
    proc.wait(timeout=60)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_status(bin_, data, rule_id, pred, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run(bin_, data, "watch", "status", "--json", check=False)
        if out.returncode == 0:
            rows = [r for r in json.loads(out.stdout) if r["id"] == rule_id]
            if rows and pred(rows[0]):
                return rows[0]
        time.sleep(every)
    raise TimeoutError("watch status never got there")


def add_rule(bin_, data, folder, out, workflow, jobs=2):
    r = run(bin_, data, "watch", "add", str(folder), "--workflow", workflow, "--out", str(out), "--jobs", str(jobs))
    return int(r.stdout.strip())


def latency(args, work: Path, base12mp: bytes):
    data, folder, out = work / "lat-data", work / "lat-in", work / "lat-out"
    for d in (folder, out):
        d.mkdir(parents=True)
    rule = add_rule(args.bin, data, folder, out, "thumbnail")
    log = open(work / "lat-service.log", "w")
    svc = start_service(args.bin, data, log)
    wait_status(args.bin, data, rule, lambda r: r["state"] == "active", 30)
    ino = Inotify(out)
    n, warmup = args.latency, 5
    lat = []
    for i in range(n + warmup):
        name = f"photo-{i:04d}.jpg"
        body = with_comment(base12mp, f"latency {i}")
        with open(folder / name, "wb") as f:
            f.write(body)
        t0 = time.monotonic()
        while name not in ino.names():
            pass
        t1 = time.monotonic()
        if i >= warmup:
            lat.append((t1 - t0) * 1000)
        time.sleep(0.05)
    stop_service(svc)
    runs = json.loads(run(args.bin, data, "history", "list", "--json", "--limit", "100000").stdout)
    runs = sorted(runs, key=lambda r: r["startedAtMs"])[warmup:]
    assert len(runs) == n and all(r["status"] == "SUCCEEDED" for r in runs), "every file once, succeeded"
    proc = [r["stoppedAtMs"] - r["startedAtMs"] for r in runs]
    over = [l - p for l, p in zip(lat, proc)]
    return {
        "files": n,
        "latency_p50_ms": pct(lat, 50),
        "latency_p99_ms": pct(lat, 99),
        "processing_p50_ms": pct(proc, 50),
        "processing_p99_ms": pct(proc, 99),
        "overhead_p50_ms": pct(over, 50),
        "overhead_p99_ms": pct(over, 99),
        "latency_minus_processing_p99_ms": pct(lat, 99) - pct(proc, 99),
    }


def make_photos(corpus: Path, dest: Path, n: int):
    jpegs = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    dest.mkdir(parents=True)
    for i in range(n):
        src = jpegs[i % len(jpegs)]
        (dest / f"{src.stem}-{i:05d}.jpg").write_bytes(with_comment(src.read_bytes(), f"copy {i}"))


def throughput(args, work: Path, corpus: Path):
    staged = work / "tp-staged"
    make_photos(corpus, staged, args.throughput)
    rows = {}
    for round_ in range(args.rounds):
        # pixelflow run on the staged files.
        data, out = work / f"tp-run-data-{round_}", work / f"tp-run-out-{round_}"
        t0 = time.monotonic()
        subprocess.run([args.bin, "--data-dir", str(data), "run", "--workflow", "workflows/thumbnail.asl.json", "--out", str(out), "--jobs", "2", str(staged)], check=True, capture_output=True)
        rows.setdefault("run", []).append(time.monotonic() - t0)
        assert len(list(out.iterdir())) == args.throughput, "pixelflow run made every thumbnail"
        shutil.rmtree(out)
        shutil.rmtree(data)
        # The watch service: all files moved in at once (a rename each: instant, like a drop).
        data, folder, out = work / f"tp-watch-data-{round_}", work / f"tp-watch-in-{round_}", work / f"tp-watch-out-{round_}"
        folder.mkdir()
        out.mkdir()
        rule = add_rule(args.bin, data, folder, out, "thumbnail", jobs=2)
        log = open(work / f"tp-service-{round_}.log", "w")
        svc = start_service(args.bin, data, log)
        wait_status(args.bin, data, rule, lambda r: r["state"] == "active", 30)
        names = sorted(os.listdir(staged))
        ino = Inotify(out)
        t0 = time.monotonic()
        for name in names:
            os.rename(staged / name, folder / name)
        # Done when every thumbnail was renamed into place (no polling of the service).
        made = set()
        while len(made) < len(names):
            made.update(n for n in ino.names() if not n.startswith("."))
        rows.setdefault("watch", []).append(time.monotonic() - t0)
        peak = peak_rss_mib(svc.pid)
        stop_service(svc)
        assert len(list(out.iterdir())) == args.throughput, "the watcher made every thumbnail"
        for name in names:
            os.rename(folder / name, staged / name)
        shutil.rmtree(out)
        shutil.rmtree(data)
        rows.setdefault("watch_rss", []).append(peak)
    shutil.rmtree(staged)
    med = lambda v: sorted(v)[len(v) // 2]
    run_s, watch_s = med(rows["run"]), med(rows["watch"])
    return {
        "files": args.throughput,
        "rounds": args.rounds,
        "run_seconds": run_s,
        "watch_seconds": watch_s,
        "run_images_per_s": args.throughput / run_s,
        "watch_images_per_s": args.throughput / watch_s,
        "watch_vs_run": run_s / watch_s,
        "watch_peak_rss_mib": max(rows["watch_rss"]),
    }


PASS_WORKFLOW = {"Comment": "Bench: records a file as processed, does nothing else.", "StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def catchup(args, work: Path):
    n = args.catchup
    cache = Path(os.environ.get("PIXELFLOW_BENCH_CACHE", Path.home() / ".cache/pixelflow/bench")) / f"catchup-{n}"
    folder, data = cache / "in", cache / "data"
    workflow = cache / "pass.asl.json"
    ready = cache / "ready"
    if not ready.exists():
        # Set-up (once, cached): N distinct small files, processed by the Pass workflow.
        shutil.rmtree(cache, ignore_errors=True)
        folder.mkdir(parents=True)
        workflow.write_text(json.dumps(PASS_WORKFLOW))
        for i in range(n):
            (folder / f"f{i:06d}.jpg").write_bytes(f"already processed file {i}\n".encode())
        t0 = time.monotonic()
        subprocess.run([args.bin, "--data-dir", str(data), "run", "--workflow", str(workflow), "--jobs", "2", str(folder)], check=True, capture_output=True)
        print(f"catch-up set-up: processed {n} files in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        ready.write_text("ok")
    # A fresh rule each time, over the same processed files.
    for r in json.loads(run(args.bin, data, "watch", "list", "--json").stdout):
        run(args.bin, data, "watch", "remove", str(r["id"]))
    out = cache / "out"
    out.mkdir(exist_ok=True)
    rule = add_rule(args.bin, data, folder, out, str(workflow), jobs=2)
    log = open(work / "catchup-service.log", "w")
    t0 = time.monotonic()
    svc = start_service(args.bin, data, log)
    row = wait_status(args.bin, data, rule, lambda r: r["skipped"] >= n, 600, every=0.05)
    seconds = time.monotonic() - t0
    peak = peak_rss_mib(svc.pid)
    stop_service(svc)
    return {"files": n, "seconds": seconds, "peak_rss_mib": peak, "processed": row["processed"], "skipped": row["skipped"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--throughput", type=int, default=2000)
    ap.add_argument("--catchup", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["latency", "throughput", "catchup"])
    args = ap.parse_args()
    from PIL import Image  # the 12 MP test image

    results = {}
    if args.only in (None, "latency"):
        biggest = max((p for p in args.corpus.iterdir() if p.suffix.lower() == ".jpg"), key=lambda p: p.stat().st_size)
        img = Image.open(biggest).convert("RGB").resize((4000, 3000), Image.LANCZOS)
        path = args.work / "12mp.jpg"
        img.save(path, quality=90)
        results["latency"] = latency(args, args.work, path.read_bytes())
        results["latency"]["source"] = f"{biggest.name} resized to 4000x3000, JPEG q90, {path.stat().st_size / 1e6:.1f} MB"
    if args.only in (None, "throughput"):
        results["throughput"] = throughput(args, args.work, args.corpus)
    if args.only in (None, "catchup"):
        results["catchup"] = catchup(args, args.work)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
