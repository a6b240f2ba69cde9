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
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_load  # noqa: E402
import soak_mesh  # noqa: E402

# A proxy's memory and descriptors must be flat after warm-up. Where the load is steady (the
# control plane's faults touch no connection of the data plane): the Theil–Sen slope over
# each process's samples after its first WARMUP seconds, for lives of at least MIN_LIFE
# seconds past warm-up. 512 KiB per 10 minutes is 9 bytes per request at 100 requests/s;
# a descriptor leaked per reconnect or per control-plane restart shows as more than 1 per
# minute. Under random faults a proxy's pools swell after each (a paused peer's requests
# pile up, each on a connection of its own, idle for up to a minute after), so there the
# test is that it comes back: after SETTLE seconds with no fault (more than the pools' 60 s
# idle timeout), each proxy's descriptors are within FD_SETTLE of the fewest it had after
# warm-up, and its RSS within RSS_SETTLE times its first after warm-up.
WARMUP = 60
MIN_LIFE = 240
RSS_LIMIT_KIB_PER_MIN = 51.2
FD_LIMIT_PER_MIN = 1.0
SETTLE = 90.0
FD_SETTLE = 6
RSS_SETTLE = 1.5
SAMPLE_EVERY = 5
# A failure is put down to a fault that was in effect while it was in flight, or ended at
# most GRACE seconds before it began (discovery and failure accrual settle after a fault).
GRACE = 5.0
# No fault starts in the run's last seconds (SETTLE under random faults).
QUIET = 15.0
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
    p.add_argument("--settle", type=float, default=None,
                   help=f"seconds with no fault at the end (random: {SETTLE:g}, else {QUIET:g})")
    p.add_argument("--report-dir", default=None,
                   help="also write the report (markdown) to DIR/SOAK-<faults>.md")
    p.add_argument("--weft", default=os.environ.get("WEFT_BIN"))
    p.add_argument("--weft-proxy", default=os.environ.get("WEFT_PROXY_BIN"))
    return p.parse_args()


class Faults:
    """The fault schedule, and a record of each fault: what, on whom, from when to when."""

    def __init__(self, mesh, mode, every, rng, crashes, settle=None):
        self.mesh, self.mode, self.rng, self.crashes = mesh, mode, rng, crashes
        self.every = every or (30.0 if mode == "control-plane" else 10.0)
        self.quiet = SETTLE if mode == "random" else QUIET
        if settle is not None:
            self.quiet = settle
        self.log = []
        # Seconds from the control plane's return until every proxy had the endpoint
        # change made while it was down (None: not within CONVERGE_WITHIN).
        self.converged = []

    async def run(self, start, until):
        """Faults at set times from `start` (every `every` seconds, or at random gaps of
        0.5 to 1.5 times it), each in a task of its own, so a slow restart delays no other;
        a fault due on a process already under one is skipped. No fault starts in the last
        `quiet` seconds, so every fault has ended, and been recovered from, by the end."""
        tasks, due = [], start
        while self.mode != "none":
            due += self.every if self.mode == "control-plane" else \
                self.rng.uniform(0.5, 1.5) * self.every
            if due > until - self.quiet:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.mode == "control-plane":
                fault = self.control_plane_cycle(down=self.rng.uniform(1, 3))
            else:
                fault = self.random_fault()
            tasks.append(asyncio.ensure_future(fault))
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        await asyncio.gather(*tasks)

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

        if not await self.inject("kill", self.mesh.control, down,
                                 while_down=change_endpoints):
            return
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
        """Kills or pauses `proc` for `down` seconds; False when it was not done."""
        if proc.busy:
            return False  # a fault on it is still under way
        if not proc.alive():
            self.crashes.note(proc)
            return False
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
                try:
                    await proc.restart()
                except RuntimeError as e:
                    self.crashes.restart_failed(proc, str(e))
                    return True
                if proc.role == "instance":
                    self.mesh.list(proc)
            else:
                proc.pause()
                await asyncio.sleep(down)
                proc.resume()
        finally:
            entry["end"] = time.monotonic()
            proc.busy = False
        return True

    def explain(self, failure):
        """The faults that explain `failure`: the caller's own node's proxy first. The
        control plane's never do: with it down the data plane must go on as it was."""
        t0, t1 = failure["start"], failure["end"]
        live = [f for f in self.data_plane()
                if f["start"] <= t1 and (f["end"] is None or f["end"] + GRACE >= t0)]
        own = [f for f in live if f["role"] == "proxy" and f["node"] == failure["node"]]
        return own or live

    def data_plane(self):
        return [f for f in self.log if f["role"] != "control"]

    def covered(self, t_start, duration):
        """The share of the run some data-plane fault (with its grace) covers: the time a
        failure could be put down to a fault at all."""
        spans = sorted((f["start"] - t_start, f["end"] - t_start + GRACE)
                       for f in self.data_plane())
        total, reach = 0.0, 0.0
        for a, b in spans:
            a, b = max(a, reach), min(b, duration)
            if b > a:
                total += b - a
            reach = max(reach, b)
        return total / duration


class Crashes:
    """Processes that exited with no fault to make them (or did not come back from one):
    each is a finding, never explained."""

    def __init__(self):
        self.found, self.seen = [], set()

    def note(self, proc):
        if proc.pid in self.seen:
            return
        self.seen.add(proc.pid)
        self.found.append(f"{proc.name} (pid {proc.pid}) exited by itself, code "
                          f"{proc.popen.returncode}; see {proc.log_path}")

    def restart_failed(self, proc, why):
        self.seen.add(proc.pid)  # one finding, not a second "exited by itself" for it
        self.found.append(f"{proc.name} did not come back after its fault: {why}")

    def check(self, procs):
        for proc in procs:
            if not proc.busy and proc.popen is not None and not proc.alive():
                self.note(proc)


def slope_per_min(points):
    """The Theil–Sen slope of (seconds, value) points, per minute: the median of the slopes
    between every two points, which a step (a pool that grew once after a fault and stays
    so) moves little and a steady climb moves all the way."""
    slopes = [(b[1] - a[1]) / (b[0] - a[0])
              for i, a in enumerate(points) for b in points[i + 1:] if b[0] > a[0]]
    return 60 * statistics.median(slopes) if slopes else 0.0


async def sample(mesh, t_start, samples, until, crashes):
    """Every SAMPLE_EVERY seconds: each proxy's (and the control plane's) RSS, descriptors
    and retry counters, by process id; and any process that exited by itself."""
    while time.monotonic() < until:
        now = time.monotonic()
        crashes.check(mesh.proxies + mesh.instances + [mesh.control])
        for proc in mesh.proxies + [mesh.control]:
            pid, born, stat = proc.pid, proc.born, proc.stat()
            if stat is None:
                continue
            rss, fds = stat
            counters = await mesh.retry_counters(proc) if proc.role == "proxy" else {}
            if proc.pid != pid:
                continue  # killed and restarted meanwhile: the counters are another's
            samples.append({"t": now - t_start, "name": proc.name, "pid": pid,
                            "born": born - t_start, "rss_kib": rss, "fds": fds, **counters})
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
    return v[max(0, math.ceil(q * len(v)) - 1)]


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
    sent = load.scheduled
    failed = [r for r in load.results if not r["ok"]]
    lost = sent - len(load.results)
    w(f"Sent {sent}, succeeded {len(load.results) - len(failed)}, failed {len(failed)} "
      f"({100 * len(failed) / max(1, sent):.3f} %), no outcome at all {lost}. A request "
      "written to a kept-alive connection that closed with no byte of an answer was sent "
      f"again once on a new connection, as HTTP clients do: {len(load.reconnects)} times "
      "(their outcome is the second try's).\n")
    w("Latencies are of the requests answered 200; time columns end at t.\n")
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
    w(f"Data-plane faults (and {GRACE:g} s after each) covered "
      f"{100 * faults.covered(t_start, duration):.0f} % of the run: the time a failure could be "
      "put down to one. Control-plane faults explain no failure.\n")
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
        if not why or r.get("crash"):
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

    w("## Processes that exited by themselves\n")
    for c in faults.crashes.found:
        w(f"- **{c}**")
    if not faults.crashes.found:
        w("- none")
    w("")

    steady = args.faults != "random"
    w("## Memory and descriptors after warm-up\n")
    if steady:
        w(f"Limits: RSS slope ≤ {RSS_LIMIT_KIB_PER_MIN:g} KiB/min, open descriptors ≤ "
          f"{FD_LIMIT_PER_MIN:g}/min (Theil–Sen over each process's samples, every "
          f"{SAMPLE_EVERY} s, after its first {WARMUP} s), for lives of at least {MIN_LIFE} s "
          "past that; shorter lives are listed without a verdict.\n")
    else:
        w(f"Under random faults each proxy's pools swell after a fault and drain within a "
          f"minute, so slopes (shown, Theil–Sen, for lives of {MIN_LIFE} s past a {WARMUP} s "
          f"warm-up) follow the schedule. The test: after {faults.quiet:g} s with no fault, each "
          f"process's descriptors are within {FD_SETTLE} of the fewest it had after warm-up "
          f"and its RSS within {RSS_SETTLE:g} × its first after warm-up. Lives a fault ended "
          "have no verdict.\n")
    w("| process | pid | lived (s) | RSS first → last MiB | RSS slope KiB/min | fds first → last | fds slope /min | verdict |")
    w("|---|---|---|---|---|---|---|---|")
    over, judged = 0, set()
    lives = {}
    for s in samples:
        lives.setdefault((s["name"], s["pid"]), []).append(s)
    last_pid = {}
    for s in samples:
        last_pid[s["name"]] = s["pid"]
    for (name, pid), ss in lives.items():
        born = max(ss[0]["born"], 0)
        warm = [s for s in ss if s["t"] >= born + WARMUP]
        lived = ss[-1]["t"] - born
        long_enough = len(warm) >= 2 and warm[-1]["t"] - warm[0]["t"] >= MIN_LIFE
        rs = fs = None
        if long_enough:
            rs = slope_per_min([(s["t"], s["rss_kib"]) for s in warm])
            fs = slope_per_min([(s["t"], s["fds"]) for s in warm])
        if steady and long_enough:
            ok = rs <= RSS_LIMIT_KIB_PER_MIN and fs <= FD_LIMIT_PER_MIN
            verdict = "flat" if ok else "**RISING**"
        elif steady:
            ok, verdict = None, "too short"
        elif last_pid[name] == pid and warm:
            floor = min(s["fds"] for s in warm)
            ok = (ss[-1]["fds"] <= floor + FD_SETTLE
                  and ss[-1]["rss_kib"] <= RSS_SETTLE * warm[0]["rss_kib"])
            verdict = (f"settled (fewest {floor})" if ok
                       else f"**did not settle** (fewest {floor})")
        else:
            ok, verdict = None, "ended by a fault" if last_pid[name] != pid else "too short"
        if ok is not None:
            over += 0 if ok else 1
            judged.add(name)
        base = warm or ss
        w(f"| {name} | {pid} | {lived:.0f} | {base[0]['rss_kib'] / 1024:.1f} → "
          f"{ss[-1]['rss_kib'] / 1024:.1f} | {'–' if rs is None else f'{rs:.1f}'} | "
          f"{base[0]['fds']} → {ss[-1]['fds']} | {'–' if fs is None else f'{fs:.2f}'} | {verdict} |")
    unjudged = [p.name for p in mesh.proxies + [mesh.control] if p.name not in judged]
    if unjudged:
        w(f"\nNo verdict for: {', '.join(unjudged)}.")
    w("")
    stale = sum(1 for c in faults.converged if c is None)
    crashed = len(faults.crashes.found)
    w(f"Verdict: {unexplained} unexplained failures, {lost} requests with no outcome, "
      f"{crashed} processes that exited by themselves or did not come back, {over} processes "
      f"over a limit on memory or descriptors ({len(judged)} of {len(mesh.proxies) + 1} judged), {stale} endpoint "
      "changes not taken up after the control plane came back.")
    ok = unexplained == 0 and lost == 0 and crashed == 0 and over == 0 and stale == 0
    return "\n".join(out) + "\n", ok


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
        crashes = Crashes()
        faults = Faults(mesh, args.faults, args.every, rng, crashes, args.settle)
        samples = []
        t_start = time.monotonic()
        until = t_start + duration
        await asyncio.gather(load.run(args.rate, until), faults.run(t_start, until),
                             sample(mesh, t_start, samples, until, crashes))
        await load.drain(timeout=soak_load.TIMEOUT + 5)
        crashes.check(mesh.proxies + mesh.instances + [mesh.control])
        text, ok = report(args, mesh, load, faults, samples, t_start, duration)
    finally:
        await mesh.stop()
    print(text)
    if args.report_dir:
        with open(os.path.join(args.report_dir, f"SOAK-{args.faults}.md"), "w") as f:
            f.write(text)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    # Kept for a look: each process's log, and every fault, sample and failure.
    with open(os.path.join(tmp, "raw.json"), "w") as f:
        json.dump({"faults": faults.log, "samples": samples, "crashes": crashes.found,
                   "failures": [r for r in load.results if not r["ok"]]}, f)
    print(f"soak: kept {tmp}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(asyncio.run(main()))
