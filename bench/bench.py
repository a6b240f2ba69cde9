"""Side-by-side proxy benchmark: direct, HAProxy, nginx, weft one hop, weft mesh path (in
plaintext and with mutual TLS between the proxies, identities from `weft control`), and
HAProxy as a plain TCP relay, the floor no HTTP proxy can go below on this kernel.

Each configuration runs under wrk (HTTP/1.1, 50 connections, closed loop), h2load
(HTTP/2, 10 connections x 10 streams) and a paced wrk (fixed offered rate, for added
latency). CPU time per request comes from each proxy process's own accounting
(/proc/PID/stat), split into user and kernel; peak RSS from VmHWM. Interleaved
repetitions (five by default): the median is reported, and as the ratio to HAProxy the
median of each repetition's ratio to HAProxy's run beside it.
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The node proxy as the DaemonSet runs it (same code as `weft proxy`, less resident text),
# built with the profile the image ships (`dist`).
WEFT_PROXY = os.path.join(ROOT, "target", "dist", "weft-proxy")
# The control plane, for the mutual-TLS mesh path: it signs the proxies' leaves and is not
# measured, so the release build the tests use serves.
WEFT = os.path.join(ROOT, "target", "release", "weft")
PROXY_CPU, LOAD_CPU = "0", "1"
DURATION = int(os.environ.get("BENCH_SECONDS", "3"))
REPS = int(os.environ.get("BENCH_REPS", "5"))
TICK = os.sysconf("SC_CLK_TCK")
BODY = "hello world\n"  # 12 bytes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def pinned(cpu, argv, **kw):
    return subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, **kw)


def cpu_ticks(pids):
    user = system = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total


def children(pid):
    """The process and its descendants (nginx workers, haproxy's worker)."""
    out = [pid]
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        kids = []
    for k in kids:
        out += children(int(k))
    return out


class Setup:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def nginx_conf(tmp, name, body):
    path = os.path.join(tmp, f"{name}.conf")
    prefix = os.path.join(tmp, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log crit;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000;
  {body}
}}
""")
    return path, prefix


def start_backend(tmp, port):
    conf, prefix = nginx_conf(tmp, "backend", f"""server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "{BODY.strip()}\\n"; }}
  }}""")
    p = pinned(LOAD_CPU, ["nginx", "-c", conf, "-p", prefix])
    wait_port(port)
    return p


def start_haproxy(tmp, port, h2port, backend):
    return start_haproxy_with(haproxy_conf(tmp, port, h2port, backend), port)


def haproxy_conf(tmp, port, h2port, backend):
    return write_haproxy_conf(tmp, "haproxy.cfg", "http", "", "  http-reuse always\n", f"""frontend h1
  bind 127.0.0.1:{port}
  default_backend be
frontend h2
  bind 127.0.0.1:{h2port} proto h2
  default_backend be
""", backend)


def start_haproxy_tcp(tmp, port, backend):
    """HAProxy relaying bytes (mode tcp, no splice): four socket calls per request and no
    HTTP work at all, so its CPU per request is the floor for any proxy on this kernel."""
    conf = write_haproxy_conf(tmp, "haproxy-tcp.cfg", "tcp", "  nosplice\n", "", f"""frontend relay
  bind 127.0.0.1:{port}
  default_backend be
""", backend)
    return start_haproxy_with(conf, port)


def write_haproxy_conf(tmp, name, mode, global_extra, defaults_extra, frontends, backend):
    conf = os.path.join(tmp, name)
    with open(conf, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 8000
{global_extra}defaults
  mode {mode}
  timeout connect 1s
  timeout client 30s
  timeout server 30s
{defaults_extra}{frontends}backend be
  server s1 127.0.0.1:{backend}
""")
    return conf


def start_haproxy_with(conf, port):
    p = pinned(PROXY_CPU, ["haproxy", "-f", conf])
    wait_port(port)
    return [p]


def start_nginx_proxy(tmp, port, h2port, backend):
    conf, prefix = nginx_conf(tmp, "proxy", f"""upstream be {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{h2port} http2;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}""")
    p = pinned(PROXY_CPU, ["nginx", "-c", conf, "-p", prefix])
    wait_port(port)
    return [p]


def start_control(tmp, disc, nodes):
    """`weft control` from `disc` as the mesh's CA for `nodes`: its process, its address,
    the anchors file and each node's token file."""
    import secrets
    ca = os.path.join(tmp, "ca")
    subprocess.run([WEFT, "identity", "init", ca], check=True, capture_output=True)
    tokens = {n: secrets.token_hex(32) for n in nodes}
    with open(os.path.join(tmp, "tokens"), "w") as f:
        f.writelines(f"{n} {t}\n" for n, t in tokens.items())
    files = {}
    for n, t in tokens.items():
        files[n] = os.path.join(tmp, f"{n}.token")
        with open(files[n], "w") as f:
            f.write(t)
    port = free_port()
    proc = pinned(LOAD_CPU, [WEFT, "control", "--listen", f"127.0.0.1:{port}",
                             "--admin", f"127.0.0.1:{free_port()}", "--discovery-file", disc,
                             "--identity-dir", ca, "--bootstrap-tokens", os.path.join(tmp, "tokens")],
                  env=dict(os.environ, WEFT_LOG="warn"))
    wait_port(port)
    return proc, f"127.0.0.1:{port}", os.path.join(ca, "anchors.pem"), files


def wait_ready(admin_port, timeout=60):
    """Until the proxy on `admin_port` has its leaf (its /ready says 200)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", admin_port), 0.5) as c:
                c.sendall(b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the proxy on admin port {admin_port} never became ready")


def weft_mesh(tmp, backend, mesh, mtls, wrap=lambda i, argv: argv, popen=None, routed=False,
              traced=None, tapped=False):
    """The weft proxies of one configuration (one hop, mesh, mesh over mutual TLS); `wrap`
    turns each proxy's command line into what runs (pinned, under callgrind). With `routed`,
    `bench` is split 90/10 between two services (both the one backend) by a route that
    matches on method and path. With `traced` (a head sample rate), tracing is on and spans
    go to a collector that takes them and keeps nothing (bench/otlp_sink.py). With `tapped`,
    each proxy has a tap subscriber (curl, reading everything) whose filter takes every
    request, at the default rate (100 events/s). Returns the
    proxies, any helper processes (the control plane, the collector) and the outbound port."""
    disc = os.path.join(tmp, "discovery.toml")
    inbound_b = free_port()
    node = f'node = "127.0.0.1:{inbound_b}"\nlabels = {{ node = "node-b" }}\n' if mesh else ""
    with open(disc, "w") as f:
        if routed:
            f.write('[[services.bench.routes]]\nname = "split"\n'
                    'matches = [{ path = { prefix = "/" }, method = "GET" }]\n'
                    'backends = [{ service = "bench-v1", weight = 90 }, '
                    '{ service = "bench-v2", weight = 10 }]\n\n')
            for svc in ("bench-v1", "bench-v2"):
                f.write(f'[[services.{svc}.endpoints]]\naddr = "127.0.0.1:{backend}"\n{node}\n')
        else:
            f.write(f'[[services.bench.endpoints]]\naddr = "127.0.0.1:{backend}"\n{node}')
    env = dict(os.environ, WEFT_LOG="warn")
    # Retries off: the backend never fails, and the others do not retry either.
    cfg = os.path.join(tmp, "weft.toml")
    helpers, source = [], {}
    with open(cfg, "w") as f:
        f.write("[resilience.retry]\nmax_retries = 0\n")
        if traced is not None:
            sink = free_port()
            helpers.append(subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "bench", "otlp_sink.py"), str(sink)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(sink, timeout=30)
            f.write(f'[tracing]\notlp = "127.0.0.1:{sink}"\nsample_rate = {traced}\n')
    if mtls:
        ctl, addr, anchors, tokens = start_control(tmp, disc, ["node-a", "node-b"])
        helpers.append(ctl)
        for n in ("node-a", "node-b"):
            source[n] = ["--node", n, "--control-plane", addr, "--trust-anchors", anchors,
                         "--identity-token-file", tokens[n]]
    else:
        source = {n: ["--discovery-file", disc] for n in ("node-a", "node-b")}
    out = free_port()
    nodes = [("node-a", out, free_port())]
    if mesh:
        nodes.append(("node-b", free_port(), inbound_b))
    popen = popen or (lambda argv: subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL, env=env))
    procs, admins = [], []
    for i, (n, o, inb) in enumerate(nodes):
        admin = free_port()
        admins.append(admin)
        procs.append(popen(wrap(i, [WEFT_PROXY, "--config", cfg, "--worker-threads", "1",
                                    "--outbound", f"127.0.0.1:{o}", "--inbound", f"127.0.0.1:{inb}",
                                    "--admin", f"127.0.0.1:{admin}"] + source[n])))
    for (_, o, inb), admin in zip(nodes, admins):
        wait_port(inb, timeout=60)
        wait_ready(admin)
    if tapped:
        for admin in admins:
            helpers.append(subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{admin}/tap"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(out)
    return procs, helpers, out


def start_weft(tmp, backend, mesh, mtls=False):
    # Files of its own: a proxy watches its discovery file, and another setup running
    # beside it must not rewrite it.
    tmp = tempfile.mkdtemp(prefix=("mtls-" if mtls else "mesh-" if mesh else "hop-"), dir=tmp)
    env = dict(os.environ, WEFT_LOG="warn")
    procs, helpers, out = weft_mesh(
        tmp, backend, mesh, mtls,
        popen=lambda argv: pinned(PROXY_CPU, argv, env=env))
    return procs, helpers, out


WRK_PACED = """
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "10")
function delay() return delay_ms end
function done(summary, latency, requests)
  io.write(string.format("PCT %d %d %d\\n", latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def run_wrk(port, host, paced, tmp, seconds=None):
    script = os.path.join(tmp, "paced.lua")
    with open(script, "w") as f:
        f.write(WRK_PACED)
    conns = "10" if paced else "50"
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds or DURATION}s", "-H", f"Host: {host}", "-s", script,
            f"http://127.0.0.1:{port}/"]
    env = dict(os.environ, WRK_DELAY_MS="10" if paced else "0")
    out = subprocess.run(["taskset", "-c", LOAD_CPU] + argv, capture_output=True, text=True, env=env).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50, p99, p999 = (int(x) for x in re.search(r"PCT (\d+) (\d+) (\d+)", out).groups())
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": reqs, "rps": rps, "p50_us": p50, "p99_us": p99, "p999_us": p999,
            "errors": int(errors.group(1)) if errors else 0}


def run_h2load(port, host):
    argv = ["h2load", "-c10", "-m10", "-D", str(DURATION), "-H", f":authority: {host}",
            f"http://127.0.0.1:{port}/"]
    out = subprocess.run(["taskset", "-c", LOAD_CPU] + argv, capture_output=True, text=True).stdout
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    lat = re.search(r"time for request:\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)", out)
    return {"requests": int(m.group(3)), "rps": rps, "errors": int(m.group(2)) - int(m.group(3))}


def measure(pids, fn):
    pids = [p for pid in pids for p in children(pid)]
    u0, s0 = cpu_ticks(pids)
    r = fn()
    u1, s1 = cpu_ticks(pids)
    n = max(r["requests"], 1)
    r["user_us"] = (u1 - u0) / TICK * 1e6 / n
    r["sys_us"] = (s1 - s0) / TICK * 1e6 / n
    r["cpu_us"] = r["user_us"] + r["sys_us"]
    r["rss_mib"] = peak_rss_kib(pids) / 1024
    return r


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def anon_kib(pid):
    """Anonymous memory (heap, stacks): RSS without the binary's and libraries' file pages."""
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    return 0


def memory(tmp, backend):
    """weft's memory: idle; then 1 000 services in discovery, 10 000 open keep-alive client
    connections (each has made one request), and wrk load on top."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    rows = []
    procs, _, port = start_weft(tmp, backend, mesh=False)
    time.sleep(1)
    rows.append(("idle, 1 service", rss_kib(procs[0].pid) / 1024, anon_kib(procs[0].pid) / 1024))
    for p in procs:
        p.terminate()
        p.wait()
    disc = os.path.join(tmp, "discovery.toml")
    with open(disc, "w") as f:
        f.write(f'[[services.bench.endpoints]]\naddr = "127.0.0.1:{backend}"\n')
        for i in range(1000):
            f.write(f'[[services.svc-{i}.endpoints]]\naddr = "127.0.0.1:{backend}"\n')
    out = free_port()
    weft = pinned(PROXY_CPU, [WEFT_PROXY, "--worker-threads", "1", "--header-read-timeout", "120s",
                              "--outbound", f"127.0.0.1:{out}", "--inbound", f"127.0.0.1:{free_port()}",
                              "--admin", f"127.0.0.1:{free_port()}", "--discovery-file", disc],
                  env=dict(os.environ, WEFT_LOG="warn"))
    wait_port(out)
    time.sleep(0.5)
    rows.append(("idle, 1 000 services", rss_kib(weft.pid) / 1024, anon_kib(weft.pid) / 1024))
    socks = []
    for i in range(10_000):
        c = socket.create_connection(("127.0.0.1", out))
        c.sendall(f"GET / HTTP/1.1\r\nHost: svc-{i % 1000}\r\n\r\n".encode())
        socks.append(c)
    for c in socks:
        c.settimeout(5)
        try:
            c.recv(4096)
        except OSError:
            pass
    time.sleep(0.5)
    rows.append(("10 000 idle keep-alive clients, 1 000 services", rss_kib(weft.pid) / 1024,
                 anon_kib(weft.pid) / 1024))
    run_wrk(out, "bench", False, tmp, seconds=4)
    rows.append(("same, with wrk load (peak)", peak_rss_kib([weft.pid]) / 1024, None))
    for c in socks:
        c.close()
    weft.terminate()
    weft.wait()
    return rows


def start(tmp, c, backend):
    """Starts configuration `c`; returns its Setup, HTTP/1.1 port, h2c port (or None), PIDs."""
    setup = Setup(tmp)
    if c == "direct":
        return setup, backend, None, []
    if c == "haproxy":
        port, h2port = free_port(), free_port()
        setup.procs = start_haproxy(tmp, port, h2port, backend)
    elif c == "haproxy tcp":
        port, h2port = free_port(), None  # a byte relay cannot turn h2c into HTTP/1.1
        setup.procs = start_haproxy_tcp(tmp, port, backend)
    elif c == "nginx":
        port, h2port = free_port(), free_port()
        setup.procs = start_nginx_proxy(tmp, port, h2port, backend)
    else:
        procs, helpers, port = start_weft(tmp, backend, mesh=c.startswith("weft mesh"),
                                          mtls=(c == "weft mesh mtls"))
        setup.procs = procs + helpers
        h2port = port
        # The control plane is not part of the path measured.
        return setup, port, h2port, [p.pid for p in procs]
    return setup, port, h2port, [p.pid for p in setup.procs]


def main():
    tmp = tempfile.mkdtemp(prefix="weft-bench-")
    backend = free_port()
    backend_proc = start_backend(tmp, backend)
    configs = ["direct", "haproxy", "haproxy tcp", "nginx", "weft 1 hop", "weft mesh",
               "weft mesh mtls"]
    results = {(c, k): [] for c in configs for k in ("h1", "h2", "paced")}
    try:
        for rep in range(REPS):
            # Every configuration is up for the whole repetition (idle ones cost nothing), so
            # each load runs through all of them back to back: runs compared with each other
            # are seconds apart, not a minute, on a machine whose speed drifts. The order
            # turns each repetition, so no configuration always follows the same one.
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            running = {c: start(tmp, c, backend) for c in order}
            try:
                time.sleep(0.3)
                for c in order:
                    run_wrk(running[c][1], "bench", False, tmp, seconds=1)  # warm pools
                for kind in ("h1", "h2", "paced"):
                    for c in order:
                        _, port, h2port, pids = running[c]
                        if kind == "h1":
                            run = lambda: run_wrk(port, "bench", False, tmp)
                        elif kind == "h2" and h2port:
                            run = lambda: run_h2load(h2port, "bench")
                        elif kind == "paced":
                            run = lambda: run_wrk(port, "bench", True, tmp)
                        else:
                            continue
                        results[(c, kind)].append(measure(pids, run))
            finally:
                for setup, *_ in running.values():
                    setup.stop()
            print(f"rep {rep + 1}/{REPS} done", file=sys.stderr)
        mem = memory(tmp, backend)
    finally:
        backend_proc.send_signal(signal.SIGTERM)
        backend_proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, configs, mem)


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def report(results, configs, mem):
    lines = []
    direct_p50 = med(results[("direct", "paced")], "p50_us")
    direct_p99 = med(results[("direct", "paced")], "p99_us")
    direct_p999 = med(results[("direct", "paced")], "p999_us")

    def paired(c, k, m):
        # Each run against HAProxy's in the same repetition, the nearest in time: the median
        # of these ratios follows the machine's drift less than a ratio of medians would.
        return [r[m] / h[m] for r, h in zip(results[(c, k)], results[("haproxy", k)])]

    def each_rep(c, k):
        # Their spread says how far one run's figure can be trusted.
        return " / ".join(f"{x:.2f}" for x in paired(c, k, "cpu_us"))

    def paired_median(c, k, m):
        return f"{statistics.median(paired(c, k, m)):.2f}"

    lines.append("| config | proto | req/s | × HAProxy | CPU µs/req (user+sys) | × HAProxy | "
                 "CPU × HAProxy, each repetition | peak RSS MiB |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        for k in ("h1", "h2"):
            rows = results[(c, k)]
            if not rows:
                continue
            rps, cpu = med(rows, "rps"), med(rows, "cpu_us")
            user, sys_ = med(rows, "user_us"), med(rows, "sys_us")
            rss = med(rows, "rss_mib")
            proxied = c != "direct"
            cpu_txt = f"{cpu:.1f} ({user:.1f}+{sys_:.1f})" if proxied else "–"
            lines.append(f"| {c} | {k} | {rps:,.0f} | {paired_median(c, k, 'rps')} | {cpu_txt} | "
                         f"{paired_median(c, k, 'cpu_us') if proxied else '–'} | "
                         f"{each_rep(c, k) if proxied else '–'} | {f'{rss:.1f}' if proxied else '–'} |")
    lines.append("")
    lines.append("`haproxy tcp` relays bytes (mode tcp, no splice; HTTP/1.1 only): the same four socket calls "
                 "per request with no HTTP work at all, so its CPU per request is what any proxy pays the "
                 "kernel here.")
    lines.append("")
    lines.append("Added latency at a fixed offered rate (~1 000 req/s: 10 connections, 10 ms think time), over direct:")
    lines.append("")
    lines.append("| config | p50 µs | p99 µs | p99.9 µs | CPU µs/req |")
    lines.append("|---|---:|---:|---:|---:|")
    for c in configs:
        rows = results[(c, "paced")]
        p50, p99, p999 = med(rows, "p50_us"), med(rows, "p99_us"), med(rows, "p999_us")
        if c == "direct":
            lines.append(f"| direct (absolute) | {p50:.0f} | {p99:.0f} | {p999:.0f} | – |")
        else:
            # Signed: on a noisy run a tail can come out below direct's.
            lines.append(f"| {c} | {p50 - direct_p50:+.0f} | {p99 - direct_p99:+.0f} | {p999 - direct_p999:+.0f} | {med(rows, 'cpu_us'):.1f} |")
    lines.append("")
    lines.append("weft's memory (one worker thread; targets: idle ≤ 10 MiB, under load ≤ 30 MiB, 10 000 idle connections ≤ 64 MiB):")
    lines.append("")
    lines.append("| state | RSS MiB | of it anonymous MiB |")
    lines.append("|---|---:|---:|")
    for name, mib, anon in mem:
        lines.append(f"| {name} | {mib:.1f} | {'–' if anon is None else f'{anon:.1f}'} |")
    errors = sum(r.get("errors", 0) for rows in results.values() for r in rows)
    table = "\n".join(lines)
    print(table)
    versions = {
        "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0],
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "weft": subprocess.run([WEFT_PROXY, "--version"], capture_output=True, text=True).stdout.strip(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "kernel": platform.release(),
    }
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
        f.write("# Benchmark results\n\n")
        f.write(f"`bench/run` on {time.strftime('%Y-%m-%d')}: {versions['cpu']}, {os.cpu_count()} CPUs, Linux {versions['kernel']}; "
                f"{versions['haproxy']}; {versions['nginx']}; {versions['weft']}. Proxies pinned to CPU 0, load and "
                f"backend (nginx, 12-byte body) to CPU 1; {DURATION} s per run, {REPS} interleaved repetitions (each load "
                f"through every configuration back to back): medians, and as ratios to HAProxy the median of each "
                f"repetition's ratio; "
                f"{errors} error responses in all runs.\n\n")
        f.write(table + "\n")
    print(f"\n{errors} error responses; written to bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
