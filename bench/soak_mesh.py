"""The soak's mesh: separate processes on loopback nodes 127.0.80.N — a `weft-proxy` per node
(its identity from the control plane, mutual TLS between them), a hello instance and world
instances per node (`weft hello-world`, reaching the mesh through their node's proxy), and
`weft control` serving the discovery file and signing the proxies' certificates. Ports are
ephemeral, chosen at the start, so that a soak can run beside the tests. Each process can
be killed and restarted on the same addresses, or paused and resumed; an
instance killed is taken out of the discovery file after the time a readiness probe would
take, and put back once it listens again, as Kubernetes' endpoints controller would.
"""
import asyncio
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = 3
WORLDS_PER_NODE = 2
WORLD_ATTEMPT, HELLO_ATTEMPT = "1s", "3s"


CONTROL_IP = "127.0.80.100"


def die_with_parent():
    """In the child before exec: SIGKILL it when the soak dies, however the soak dies, so no
    mesh process outlives it (they run in sessions of their own, away from the terminal's
    Ctrl-C, which the soak handles)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def node_ip(i):
    return f"127.0.80.{i + 1}"


def free_port(ip):
    """A port on `ip` nothing listens on now; the process given it binds it for the run."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


async def accepts(host, port):
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
        w.close()
        return True
    except (OSError, asyncio.TimeoutError):
        return False


async def http_get(host, port, path, timeout=2.0):
    """(status, body) of a plain GET, or None."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.write(f"GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), timeout)
        w.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body.decode(errors="replace")
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return None


class Proc:
    """One process of the mesh, restartable on the same addresses."""

    def __init__(self, name, role, node, argv, log, ready):
        self.name, self.role, self.node, self.argv = name, role, node, argv
        self.log_path, self.ready = log, ready
        self.popen, self.busy, self.born, self.listed = None, False, 0.0, True

    async def start(self, timeout=60):
        log = open(self.log_path, "ab")
        env = dict(os.environ, WEFT_LOG=os.environ.get("WEFT_LOG", "warn"))
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=log, env=env,
                                      start_new_session=True, preexec_fn=die_with_parent)
        log.close()
        self.born = time.monotonic()
        end = time.monotonic() + timeout
        while not await self.ready():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); see {self.log_path}")
            if time.monotonic() > end:
                raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")
            await asyncio.sleep(0.05)

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def kill(self):
        self.popen.kill()
        self.popen.wait()

    async def restart(self):
        await self.start(timeout=120)

    def pause(self):
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self):
        self.popen.send_signal(signal.SIGCONT)

    def stat(self):
        """(RSS in KiB, open descriptors), or None when it is not running."""
        if not self.alive():
            return None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            return rss, len(os.listdir(f"/proc/{self.pid}/fd"))
        except (OSError, StopIteration):
            return None

    def stop(self):
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Mesh:
    def __init__(self, tmp, weft, weft_proxy):
        self.tmp = tmp
        self.weft = weft or os.path.join(ROOT, "target", "release", "weft")
        self.weft_proxy = weft_proxy or os.path.join(ROOT, "target", "release", "weft-proxy")
        self.discovery = os.path.join(tmp, "discovery.toml")
        self.proxies, self.instances, self.control = [], [], None
        self.inbounds = {}

    def path(self, name):
        return os.path.join(self.tmp, name)

    async def start(self):
        ca = self.path("ca")
        subprocess.run([self.weft, "identity", "init", ca], check=True, capture_output=True)
        names = [f"node-{i + 1}" for i in range(NODES)]
        control = free_port(CONTROL_IP)
        tokens = {n: secrets.token_hex(32) for n in names}
        with open(self.path("tokens"), "w") as f:
            f.writelines(f"{n} {t}\n" for n, t in tokens.items())
        for n, t in tokens.items():
            with open(self.path(f"{n}.token"), "w") as f:
                f.write(t)
        with open(self.path("weft.toml"), "w") as f:
            f.write(f'[services.world.timeout]\nper_attempt = "{WORLD_ATTEMPT}"\n\n'
                    f'[services.hello.timeout]\nper_attempt = "{HELLO_ATTEMPT}"\n')
        for i, n in enumerate(names):
            ip = node_ip(i)
            outbound, inbound, admin = (free_port(ip) for _ in range(3))
            self.inbounds[n] = f"{ip}:{inbound}"
            self.instances.append(self.instance(f"hello-{i + 1}", n, ip,
                                                ["--text", "Hello", "--target", "world",
                                                 "--proxy", f"{ip}:{outbound}"]))
            for k in range(WORLDS_PER_NODE):
                self.instances.append(self.instance(f"world-{i + 1}{chr(97 + k)}", n, ip,
                                                    ["--text", "world"]))
            proxy = Proc(
                f"proxy-{i + 1}", "proxy", n,
                [self.weft_proxy, "--config", self.path("weft.toml"), "--node", n,
                 "--outbound", f"{ip}:{outbound}", "--inbound", f"{ip}:{inbound}", "--admin",
                 f"{ip}:{admin}", "--control-plane", f"{CONTROL_IP}:{control}",
                 "--trust-anchors", os.path.join(ca, "anchors.pem"), "--identity-token-file",
                 self.path(f"{n}.token")],
                self.path(f"proxy-{i + 1}.log"), self.proxy_ready(ip, admin))
            proxy.outbound, proxy.admin = (ip, outbound), (ip, admin)
            self.proxies.append(proxy)
        self.write_discovery()
        self.control = Proc(
            "control", "control", None,
            [self.weft, "control", "--listen", f"{CONTROL_IP}:{control}", "--admin",
             f"{CONTROL_IP}:{free_port(CONTROL_IP)}", "--discovery-file", self.discovery,
             "--identity-dir", ca, "--bootstrap-tokens", self.path("tokens")],
            self.path("control.log"), lambda: accepts(CONTROL_IP, control))
        await self.control.start()
        await asyncio.gather(*(p.start() for p in self.proxies))
        await asyncio.gather(*(p.start() for p in self.instances))

    def instance(self, name, node, ip, extra):
        port = free_port(ip)
        p = Proc(name, "instance", node,
                 [self.weft, "hello-world", "--addr", f"{ip}:{port}"] + extra,
                 self.path(f"{name}.log"), lambda: accepts(ip, port))
        p.addr = f"{ip}:{port}"
        p.service = "hello" if name.startswith("hello") else "world"
        return p

    @staticmethod
    def proxy_ready(ip, admin):
        async def ready():
            got = await http_get(ip, admin, "/ready")
            return got is not None and got[0] == 200
        return ready

    def write_discovery(self):
        """The endpoints of every instance listed now, each with its node's proxy."""
        out = ["# Written by bench/soak: the instances listed now, each with its node's proxy.\n"]
        # No `ports`: every instance has a port of its own, and callers name the services on 80.
        for service, protocol in (("hello", "http1"), ("world", "http2")):
            out.append(f"[services.{service}]\n")
            for p in self.instances:
                if p.service != service or not p.listed:
                    continue
                out.append(f'[[services.{service}.endpoints]]\naddr = "{p.addr}"\n'
                           f'node = "{self.inbounds[p.node]}"\nprotocol = "{protocol}"\n'
                           f'labels = {{ app = "{service}", node = "{p.node}" }}\n')
        tmp = self.discovery + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(out))
        os.replace(tmp, self.discovery)

    def unlist_if_down(self, proc):
        if not proc.alive() and proc.listed:
            proc.listed = False
            self.write_discovery()

    def list(self, proc):
        if not proc.listed:
            proc.listed = True
            self.write_discovery()

    async def retry_counters(self, proxy):
        """The proxy's retries and retry-budget refusals so far, summed over services."""
        if not proxy.alive():
            return {}
        got = await http_get(*proxy.admin, "/metrics", timeout=1.0)
        if got is None or got[0] != 200:
            return {}
        sums = {"retries": 0, "budget_exhausted": 0}
        for line in got[1].splitlines():
            for key, family in (("retries", "weft_retries_total{"),
                                ("budget_exhausted", "weft_retry_budget_exhausted_total{")):
                if line.startswith(family):
                    sums[key] += int(float(line.rsplit(" ", 1)[1]))
        return sums

    async def endpoints(self, proxy, service):
        """The addresses `proxy` balances `service` over now (sorted), or None."""
        got = await http_get(*proxy.admin, "/endpoints", timeout=1.0)
        if got is None or got[0] != 200:
            return None
        try:
            eps = json.loads(got[1])["services"][service]["endpoints"]
        except (ValueError, KeyError, TypeError):
            return None
        return sorted(e["addr"] for e in eps)

    async def stop(self):
        for p in self.instances + self.proxies + ([self.control] if self.control else []):
            p.stop()
