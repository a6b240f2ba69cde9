"""The soak: weft's mesh as separate processes on loopback "nodes" (a proxy per node, hello
and world instances, `weft control` on a discovery file as the mesh's CA), a steady open-loop
load for a set time, and faults at random: instances, proxies and the control plane killed
(SIGKILL) and restarted, or paused (SIGSTOP) and resumed. It reports what the clients saw
(every failure, with the fault that explains it), the retries the proxies made, latency
percentiles over time, and each proxy's RSS and open file descriptors over time, whose
slope after warm-up must stay under the limits below.

    python3 bench/soak.py [--minutes M] [--rate R] [--faults random|control-plane]
                          [--seed S] [--report-dir DIR]

`bench/soak` builds the binaries and runs this. Loopback only (127.0.80.0/24); every
process it starts is stopped when it ends.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_load  # noqa: E402
import soak_mesh  # noqa: E402

# A proxy's memory and descriptors must be flat after warm-up: least-squares slope over each
# process's samples after its first WARMUP seconds, for lives of at least MIN_LIFE seconds
# past warm-up. 512 KiB per 10 minutes is 9 bytes per request at 100 requests/s, or 8 KiB
# per fault at the random schedule's ~60 faults: a leak of either shows. A descriptor
# leaked per fault or per reconnect shows as more than 1 per minute.
WARMUP = 60
MIN_LIFE = 180
RSS_LIMIT_KIB_PER_MIN = 51.2
FD_LIMIT_PER_MIN = 1.0
SAMPLE_EVERY = 5
# A failure is put down to a fault that was in effect while it was in flight, or ended at
# most GRACE seconds before it began (discovery and failure accrual settle after a fault).
GRACE = 5.0
# Discovery changed while the control plane was down must reach every proxy this soon
# after it is back.
CONVERGE_WITHIN = 20.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=float, default=100, help="requests per second, open loop")
    p.add_argument("--faults", choices=["random", "control-plane", "none"], default="random")
    p.add_argument("--every", type=float, default=None,
                   help="seconds between faults (random: mean; control-plane: period, 30)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--report-dir", default=None,
                   help="also write the report (markdown) to DIR/SOAK-<faults>.md")
    p.add_argument("--weft", default=os.environ.get("WEFT_BIN"))
    p.add_argument("--weft-proxy", default=os.environ.get("WEFT_PROXY_BIN"))
    return p.parse_args()


class Faults:
    """The fault schedule, and a record of each fault: what, on whom, from when to when."""

    def __init__(self, mesh, mode, every, rng):
        self.mesh, self.mode, self.rng = mesh, mode, rng
        self.every = every or (30.0 if mode == "control-plane" else 10.0)
        self.log = []
        # Seconds from the control plane's return until every proxy had the endpoint
        # change made while it was down (None: not within CONVERGE_WITHIN).
        self.converged = []

    async def run(self, until):
        while True:
            if self.mode == "control-plane":
                wait = self.every
            else:
                wait = self.rng.uniform(0.5, 1.5) * self.every
            if time.monotonic() + wait > until - 15 or self.mode == "none":
                # The last seconds run with no fault, so every fault has ended (and been
                # recovered from) by the end.
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                return
            await asyncio.sleep(wait)
            if self.mode == "control-plane":
                await self.control_plane_cycle(down=self.rng.uniform(1, 3))
            else:
                await self.random_fault()

    async def random_fault(self):
        r = self.rng.random()
        if r < 0.30:
            target, action = self.rng.choice(self.mesh.instances), "kill"
        elif r < 0.50:
            target, action = self.rng.choice(self.mesh.instances), "stop"
        elif r < 0.62:
            target, action = self.rng.choice(self.mesh.proxies), "kill"
        elif r < 0.77:
            target, action = self.rng.choice(self.mesh.proxies), "stop"
        elif r < 0.89:
            target, action = self.mesh.control, "kill"
        else:
            target, action = self.mesh.control, "stop"
        await self.inject(action, target, down=self.rng.uniform(1, 5))

    async def control_plane_cycle(self, down):
        """Kills the control plane; while it is down a world instance leaves discovery (the
        one left out before comes back); once it is back, how long until every proxy knows."""
        worlds = [p for p in self.mesh.instances if p.service == "world"]
        out = worlds[len(self.converged) % len(worlds)]

        def change_endpoints():
            for p in worlds:
                p.listed = p is not out
            self.mesh.write_discovery()

        await self.inject("kill", self.mesh.control, down, while_down=change_endpoints)
        back = time.monotonic()
        want = sorted(p.addr for p in worlds if p.listed)
        while time.monotonic() - back < CONVERGE_WITHIN:
            seen = await asyncio.gather(*(self.mesh.endpoints(p, "world")
                                          for p in self.mesh.proxies))
            if all(s == want for s in seen):
                self.converged.append(time.monotonic() - back)
                return
            await asyncio.sleep(0.05)
        self.converged.append(None)

    async def inject(self, action, proc, down, while_down=None):
        if proc.busy:
            return  # a fault on it is still under way
        proc.busy = True
        entry = {"action": action, "target": proc.name, "node": proc.node,
                 "role": proc.role, "start": time.monotonic(), "end": None}
        self.log.append(entry)
        try:
            if action == "kill":
                proc.kill()
                if while_down:
                    while_down()
                if proc.role == "instance":
                    asyncio.get_running_loop().call_later(
                        min(2.0, down), self.mesh.unlist_if_down, proc)
                await asyncio.sleep(down)
                await proc.restart()
                if proc.role == "instance":
                    self.mesh.list(proc)
            else:
                proc.pause()
                await asyncio.sleep(down)
                proc.resume()
        finally:
            entry["end"] = time.monotonic()
            proc.busy = False

    def explain(self, failure):
        """The faults that explain `failure`: the caller's own node's proxy first."""
        t0, t1 = failure["start"], failure["end"]
        live = [f for f in self.log
                if f["start"] <= t1 and (f["end"] is None or f["end"] + GRACE >= t0)]
        own = [f for f in live if f["role"] == "proxy" and f["node"] == failure["node"]]
        return own or live


def slope_per_min(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return 0.0
    return 60 * sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


async def sample(mesh, t_start, samples, until):
    """Every SAMPLE_EVERY seconds: each proxy's (and the control plane's) RSS, descriptors
    and retry counters, by process id."""
    while time.monotonic() < until:
        now = time.monotonic()
        for proc in mesh.proxies + [mesh.control]:
            stat = proc.stat()
            if stat is None:
                continue
            rss, fds = stat
            counters = await mesh.retry_counters(proc) if proc.role == "proxy" else {}
            samples.append({"t": now - t_start, "name": proc.name, "pid": proc.pid,
                            "born": proc.born - t_start, "rss_kib": rss, "fds": fds, **counters})
        await asyncio.sleep(SAMPLE_EVERY)


def retries_between(samples, name, t0, t1, key):
    """What `name`'s proxies counted under `key` in (t0, t1], across restarts."""
    total, last = 0, {}
    for s in samples:
        if s["name"] != name or key not in s:
            continue
        prev = last.get(s["pid"])
        if prev is None:
            # A new process: what it counted since it was born (the first sample of the
            # run counts from the run's start).
            prev = 0 if s["born"] > 0 else s[key]
        if t0 < s["t"] <= t1:
            total += s[key] - prev
        last[s["pid"]] = s[key]
    return total


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def ms(x):
    return "–" if x is None else f"{x * 1000:.1f}"


def report(args, mesh, load, faults, samples, t_start, duration):
    rows = max(1, int(duration // 30))
    width = duration / rows
    out = []
    w = out.append
    mode = {"random": "random faults", "control-plane": "the control plane killed every "
            f"{faults.every:g} s", "none": "no faults"}[args.faults]
    w(f"# weft soak: {duration / 60:g} minutes, {args.rate:g} requests/s, {mode}\n")
    w(f"Seed {args.seed}. {len(mesh.proxies)} nodes, each with a proxy, a hello and "
      f"{soak_mesh.WORLDS_PER_NODE} world instances; `weft control` on a discovery file, mutual "
      "TLS between proxies. Clients call `http://hello/` through each node's proxy in turn; "
      "hello calls world through its own node's proxy (two mesh hops, four proxy passes). "
      f"Timeouts: world {soak_mesh.WORLD_ATTEMPT} per attempt, hello "
      f"{soak_mesh.HELLO_ATTEMPT}; retries at the defaults (2, 20 % budget).\n")
    sent = len(load.results)
    failed = [r for r in load.results if not r["ok"]]
    w(f"Sent {sent}, succeeded {sent - len(failed)}, failed {len(failed)} "
      f"({100 * len(failed) / max(1, sent):.3f} %); clients reconnected after a stale "
      f"keep-alive connection {load.reconnects} times (as HTTP clients do, not counted as "
      "failures).\n")
    w("## Over time\n")
    names = [p.name for p in mesh.proxies]
    head = "| t (s) | sent | failed | p50 ms | p99 ms | max ms | retries | budget out | faults | " + \
        " | ".join(f"{n} RSS MiB / fds" for n in names) + " | control RSS MiB / fds |"
    w(head)
    w("|" + "---|" * (head.count("|") - 1))
    for i in range(rows):
        t0, t1 = i * width, (i + 1) * width
        rs = [r for r in load.results if t0 <= r["start"] - t_start < t1]
        lat = [r["latency"] for r in rs if r["ok"]]
        nf = sum(1 for r in rs if not r["ok"])
        retries = sum(retries_between(samples, n, t0, t1, "retries") for n in names)
        budget = sum(retries_between(samples, n, t0, t1, "budget_exhausted") for n in names)
        fs = [f for f in faults.log if t0 <= f["start"] - t_start < t1]
        fault_text = ", ".join(f"{f['action']} {f['target']}" for f in fs) or "–"
        cells = []
        for n in names + [mesh.control.name]:
            last = [s for s in samples if s["name"] == n and t0 < s["t"] <= t1]
            cells.append(f"{last[-1]['rss_kib'] / 1024:.1f} / {last[-1]['fds']}" if last else "down")
        w(f"| {t1:.0f} | {len(rs)} | {nf} | {ms(pct(lat, .5))} | {ms(pct(lat, .99))} | "
          f"{ms(max(lat) if lat else None)} | {retries} | {budget} | {fault_text} | "
          + " | ".join(cells) + " |")
    w("")
    lat = [r["latency"] for r in load.results if r["ok"]]
    w(f"Whole run: p50 {ms(pct(lat, .5))} ms, p99 {ms(pct(lat, .99))} ms, p99.9 "
      f"{ms(pct(lat, .999))} ms, max {ms(max(lat) if lat else None)} ms; retries "
      f"{sum(retries_between(samples, n, -1, duration + 60, 'retries') for n in names)}.\n")

    w("## Faults\n")
    kinds = {}
    for f in faults.log:
        kinds.setdefault((f["action"], f["role"]), []).append(f)
    for (action, role), fs in sorted(kinds.items()):
        took = statistics.mean(f["end"] - f["start"] for f in fs if f["end"])
        w(f"- {action} {role}: {len(fs)} times, {took:.1f} s down on average")
    if not faults.log:
        w("- none")
    if faults.converged:
        got = [c for c in faults.converged if c is not None]
        w(f"- endpoints changed while the control plane was down ({len(faults.converged)} "
          f"times: a world instance out, the one out before back): every proxy had the "
          f"change {ms(statistics.median(got)) if got else '–'} ms (median), "
          f"{ms(max(got)) if got else '–'} ms (max) after the control plane was back; "
          f"{len(faults.converged) - len(got)} times not within {CONVERGE_WITHIN:g} s")
    w("")

    w("## Client-visible failures, each explained\n")
    unexplained = 0
    causes = {}
    for r in failed:
        why = faults.explain(r)
        if not why:
            unexplained += 1
            key = "UNEXPLAINED"
        elif why[0]["role"] == "proxy" and why[0]["node"] == r["node"]:
            key = f"the caller's own node proxy ({r['node']}) was {why[0]['action']}ped" \
                if why[0]["action"] == "stop" else f"the caller's own node proxy ({r['node']}) was killed"
        else:
            key = "during " + " + ".join(sorted({f"{f['action']} {f['role']}" for f in why}))
        causes.setdefault((key, r["what"]), []).append(r)
    for (key, what), rs in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        w(f"- {len(rs)} × {what} — {key}")
    if not failed:
        w("- none")
    w("")

    w("## Memory and descriptors after warm-up\n")
    w(f"Limits: RSS slope ≤ {RSS_LIMIT_KIB_PER_MIN:g} KiB/min, open descriptors ≤ "
      f"{FD_LIMIT_PER_MIN:g}/min, least squares over each process's samples (every "
      f"{SAMPLE_EVERY} s) after its first {WARMUP} s, for lives of at least {MIN_LIFE} s past "
      "that; shorter lives (a proxy killed by the schedule) are listed without a verdict.\n")
    w("| process | pid | lived (s) | RSS first → last MiB | RSS slope KiB/min | fds first → last | fds slope /min | verdict |")
    w("|---|---|---|---|---|---|---|---|")
    over = 0
    lives = {}
    for s in samples:
        lives.setdefault((s["name"], s["pid"]), []).append(s)
    for (name, pid), ss in lives.items():
        born = max(ss[0]["born"], 0)
        warm = [s for s in ss if s["t"] >= born + WARMUP]
        lived = ss[-1]["t"] - born
        if len(warm) < 2 or warm[-1]["t"] - warm[0]["t"] < MIN_LIFE:
            verdict, rs, fs = "too short", None, None
        else:
            rs = slope_per_min([(s["t"], s["rss_kib"]) for s in warm])
            fs = slope_per_min([(s["t"], s["fds"]) for s in warm])
            ok = rs <= RSS_LIMIT_KIB_PER_MIN and fs <= FD_LIMIT_PER_MIN
            over += 0 if ok else 1
            verdict = "flat" if ok else "**RISING**"
        base = warm or ss
        w(f"| {name} | {pid} | {lived:.0f} | {base[0]['rss_kib'] / 1024:.1f} → "
          f"{ss[-1]['rss_kib'] / 1024:.1f} | {'–' if rs is None else f'{rs:.1f}'} | "
          f"{base[0]['fds']} → {ss[-1]['fds']} | {'–' if fs is None else f'{fs:.2f}'} | {verdict} |")
    w("")
    stale = sum(1 for c in faults.converged if c is None)
    w(f"Verdict: {unexplained} unexplained failures, {over} processes over a slope limit, "
      f"{stale} endpoint changes not taken up after the control plane came back.")
    return "\n".join(out) + "\n", unexplained == 0 and over == 0 and stale == 0


async def main():
    args = parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 32)
    rng = random.Random(args.seed)
    duration = args.minutes * 60
    work = os.path.join(soak_mesh.ROOT, "target", "soak", args.faults)
    os.makedirs(work, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=work)
    mesh = soak_mesh.Mesh(tmp, args.weft, args.weft_proxy)
    try:
        await mesh.start()
        print(f"soak: mesh up in {tmp}; {duration:g} s at {args.rate:g}/s, faults {args.faults}, "
              f"seed {args.seed}", file=sys.stderr, flush=True)
        load = soak_load.Load([p.outbound for p in mesh.proxies], [p.node for p in mesh.proxies])
        faults = Faults(mesh, args.faults, args.every, rng)
        samples = []
        t_start = time.monotonic()
        until = t_start + duration
        await asyncio.gather(load.run(args.rate, until), faults.run(until),
                             sample(mesh, t_start, samples, until))
        await load.drain(timeout=15)
        text, ok = report(args, mesh, load, faults, samples, t_start, duration)
    finally:
        await mesh.stop()
    print(text)
    if args.report_dir:
        with open(os.path.join(args.report_dir, f"SOAK-{args.faults}.md"), "w") as f:
            f.write(text)
    with open(os.path.join(tmp, "raw.json"), "w") as f:
        json.dump({"faults": faults.log, "samples": samples,
                   "failures": [r for r in load.results if not r["ok"]]}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(asyncio.run(main()))
