"""The soak's clients: an open-loop load of `GET http://hello/` at a steady rate, sent in turn
through each node's proxy (as apps on every node would, with `http_proxy`), over kept-alive
HTTP/1.1 connections. Every request's outcome is kept with its start and end: status, the
`weft-error` header, or the connection error. A kept-alive connection the proxy has closed
is dropped before use; and as HTTP clients do (Go's), a request written to a kept-alive
connection that then closes with no byte of an answer is sent again, once, on a new
connection: counted apart, with its time, and its outcome is the second try's.
"""
import asyncio
import time

TIMEOUT = 10.0
REQUEST = b"GET http://hello/ HTTP/1.1\r\nhost: hello\r\nuser-agent: weft-soak\r\n\r\n"


class Stale(Exception):
    """A kept-alive connection closed before any byte of the answer."""


class Load:
    def __init__(self, proxies, nodes):
        self.proxies, self.nodes = proxies, nodes
        self.idle = {i: [] for i in range(len(proxies))}
        self.results, self.reconnects, self.tasks = [], [], set()
        self.scheduled = 0

    async def run(self, rate, until):
        start = time.monotonic()
        n = 0
        while True:
            due = start + n / rate
            if due >= until:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.scheduled += 1
            task = asyncio.ensure_future(self.one(n % len(self.proxies)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            n += 1

    async def drain(self, timeout):
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    async def one(self, i):
        start = time.monotonic()
        result = {"start": start, "node": self.nodes[i], "ok": False}
        try:
            status, error, body = await asyncio.wait_for(self.send(i), TIMEOUT)
            result["status"] = status
            result["ok"] = status == 200
            if not result["ok"]:
                cause = f", weft-error: {error}" if error else ""
                result["what"] = f"{status}{cause} ({body[:80].strip()!r})"
        except asyncio.TimeoutError:
            result["what"] = f"no answer in {TIMEOUT:g} s"
        except (OSError, Stale, asyncio.IncompleteReadError) as e:
            result["what"] = f"{type(e).__name__}: {e}"[:120]
        except Exception as e:  # an answer this client cannot read: a finding, not a fault's
            result["what"] = f"unreadable answer: {type(e).__name__}: {e}"[:120]
            result["crash"] = True
        result["end"] = time.monotonic()
        result["latency"] = result["end"] - start
        self.results.append(result)

    async def send(self, i):
        while self.idle[i]:
            conn = self.idle[i].pop()
            if conn[0].at_eof():
                conn[1].close()  # closed by the proxy while idle
                continue
            try:
                return await self.exchange(i, conn, reused=True)
            except Stale:
                self.reconnects.append(time.monotonic())
                break
        conn = await asyncio.open_connection(*self.proxies[i])
        return await self.exchange(i, conn, reused=False)

    async def exchange(self, i, conn, reused):
        reader, writer = conn
        try:
            writer.write(REQUEST)
            await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                if reused and not e.partial:
                    raise Stale("kept-alive connection closed") from None
                raise
            except ConnectionResetError:
                if reused:
                    raise Stale("kept-alive connection reset") from None
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body, to_close = await self.body(reader, headers)
        except BaseException:
            writer.close()
            raise
        if to_close or headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle[i].append(conn)
        return status, headers.get("weft-error"), body.decode("utf-8", "replace")

    @staticmethod
    async def body(reader, headers):
        """The body, and whether it ran to the connection's close."""
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"])), False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    return out, False
                out += await reader.readexactly(size)
                await reader.readexactly(2)
        return await reader.read(), True
