"""User-space instructions per proxied request, counted by callgrind: a figure a noisy
machine cannot move, for comparing proxies and changes where CPU time varies by 10 %.
Each proxy runs under valgrind twice (few and many requests); the difference divided by
the difference in requests leaves start-up out. Kernel work is not counted (see RESULTS.md
for CPU time, which includes it)."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

FEW, MANY = 2_000, 12_000
# The mesh path with tracing on, by head sample rate.
TRACED = {"weft mesh traced 1%": 0.01, "weft mesh traced 100%": 1.0}


def under_callgrind(out, argv):
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv


def total(path):
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def load(port, n, h2):
    args = ["h2load", "-n", str(n), "-c", "10"]
    args += ["-m", "10"] if h2 else ["--h1"]
    args += ["-H", ":authority: bench", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if not m or int(m.group(1)) != n:
        raise RuntimeError(f"h2load did not finish cleanly: {out[-500:]}")


def run(tmp, backend, config, n, h2):
    """Instructions of all the config's proxies for `n` requests, start-up included."""
    outs, procs, helpers = [], [], []
    if config == "haproxy":
        port, h2port = bench.free_port(), bench.free_port()
        cfg = bench.haproxy_conf(tmp, port, h2port, backend)
        out = os.path.join(tmp, f"cg-haproxy-{n}")
        procs.append(subprocess.Popen(under_callgrind(out, ["haproxy", "-f", cfg]),
                                      stderr=subprocess.DEVNULL))
        outs.append(out)
        port = h2port if h2 else port
    else:
        sub = tempfile.mkdtemp(dir=tmp)
        outs = [os.path.join(sub, f"cg-weft-{i}-{n}") for i in range(2)]
        env = dict(os.environ, WEFT_LOG="warn")
        procs, helpers, port = bench.weft_mesh(
            sub, backend, mesh=config.startswith("weft mesh"), mtls=(config == "weft mesh mtls"),
            routed=(config == "weft mesh routed"), traced=TRACED.get(config),
            tapped=(config == "weft mesh tapped"),
            wrap=lambda i, argv: under_callgrind(outs[i], argv),
            popen=lambda argv: subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL))
        outs = outs[:len(procs)]
    bench.wait_port(port, timeout=60)
    time.sleep(1)
    load(port, n, h2)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)
    for h in helpers:
        h.terminate()
        h.wait(timeout=10)
    return sum(total(o) for o in outs)


def main():
    tmp = tempfile.mkdtemp(prefix="weft-instr-")
    backend = bench.free_port()
    bp = bench.start_backend(tmp, backend)
    rows = []
    try:
        for config in ["haproxy", "weft 1 hop", "weft mesh", "weft mesh routed", "weft mesh mtls",
                       *TRACED, "weft mesh tapped"]:
            for h2 in (False, True):
                few = run(tmp, backend, config, FEW, h2)
                many = run(tmp, backend, config, MANY, h2)
                per = (many - few) / (MANY - FEW)
                rows.append((config, "h2" if h2 else "h1", per))
                print(f"{config:10} {'h2' if h2 else 'h1'}: {per:,.0f} instructions/request", flush=True)
    finally:
        bp.terminate()
        bp.wait()
    base = {proto: per for config, proto, per in rows if config == "haproxy"}
    lines = ["# User-space instructions per request", "",
             "`bench/instructions` (callgrind; h2load, 10 connections, HTTP/1.1 or 10 streams each "
             f"over HTTP/2; ({MANY:,} − {FEW:,} requests) apart, so start-up cancels out). "
             "Kernel work is not in these figures.", "",
             "| config | proto | instructions/request | × HAProxy |", "|---|---|---:|---:|"]
    plain = {proto: per for config, proto, per in rows if config == "weft mesh"}
    for config, proto, per in rows:
        lines.append(f"| {config} | {proto} | {per:,.0f} | {per / base[proto]:.2f} |")
    lines += ["", "The mesh path over mutual TLS (identities from `weft control`, TLS 1.3 on ring "
              "between the two proxies) costs "
              + ", ".join(f"{per / plain[proto]:.2f} × ({proto})" for config, proto, per in rows
                          if config == "weft mesh mtls")
              + " the plaintext mesh path's instructions per request.",
              "",
              "A request that matches a route (a rule on method and path prefix, and a backend "
              "drawn by weight, 90/10) costs "
              + ", ".join(f"{per - plain[proto]:+,.0f} instructions ({per / plain[proto]:.3f} ×, {proto})"
                          for config, proto, per in rows if config == "weft mesh routed")
              + " against the same mesh path with no routes.",
              "",
              "With tracing on (every request joins a trace, its context written onward, its "
              "spans held to its end; a share sampled and exported over OTLP to a collector "
              "that keeps nothing), the mesh path costs "
              + ", ".join(f"{per / plain[proto]:.3f} × ({config[len('weft mesh traced '):]}, {proto})"
                          for config, proto, per in rows if config in TRACED)
              + " its instructions with tracing off.",
              "",
              "With a tap subscriber on each proxy whose filter takes every request (the "
              "default 100 events/s; under callgrind that describes a larger share of requests "
              "than at full speed), the mesh path costs "
              + ", ".join(f"{per / plain[proto]:.3f} × ({proto})" for config, proto, per in rows
                          if config == "weft mesh tapped")
              + " its instructions with no subscriber."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(bench.ROOT, "bench", "INSTRUCTIONS.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
