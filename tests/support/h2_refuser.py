"""An HTTP/2 (h2c) instance that turns requests away unprocessed before it serves them, as a
server does while it drains, written frame by frame (hyperframe and hpack).

    h2_refuser.py MODE N

MODE refuse: the first N requests get RST_STREAM(REFUSED_STREAM).
MODE goaway: the first N connections get GOAWAY(last stream 0) at their first request,
and close.
Every later request is answered 200 with `served N` (N counting every request seen) and a
`x-seen` header. It prints its port first; `GET /count` (never refused) answers the
number of requests seen before it.
"""

import socket
import sys
import threading

import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REFUSED_STREAM = 0x7
lock = threading.Lock()
state = {"seen": 0, "turned_away": 0}


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def serve(conn, mode, limit):
    decoder, encoder = hpack.Decoder(), hpack.Encoder()
    try:
        read_exact(conn, len(PREFACE))
        conn.sendall(SettingsFrame(0).serialize())
        paths = {}
        while True:
            header = read_exact(conn, 9)
            frame, length = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(read_exact(conn, length)))
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                ack = SettingsFrame(0)
                ack.flags.add("ACK")
                conn.sendall(ack.serialize())
            elif isinstance(frame, HeadersFrame):
                headers = dict(decoder.decode(frame.data))
                paths[frame.stream_id] = headers.get(":path", "/")
                if "END_STREAM" in frame.flags:
                    answer(conn, encoder, frame.stream_id, paths.pop(frame.stream_id), mode, limit)
            elif isinstance(frame, DataFrame):
                if frame.flow_controlled_length:
                    conn.sendall(WindowUpdateFrame(0, window_increment=frame.flow_controlled_length).serialize())
                if "END_STREAM" in frame.flags and frame.stream_id in paths:
                    answer(conn, encoder, frame.stream_id, paths.pop(frame.stream_id), mode, limit)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def answer(conn, encoder, stream_id, path, mode, limit):
    with lock:
        if path == "/count":
            body = str(state["seen"]).encode()
        else:
            state["seen"] += 1
            body = None
            if state["turned_away"] < limit:
                state["turned_away"] += 1
                if mode == "refuse":
                    conn.sendall(RstStreamFrame(stream_id, error_code=REFUSED_STREAM).serialize())
                    return
                conn.sendall(GoAwayFrame(0, last_stream_id=0).serialize())
                # Closed as a draining server does: the write side first, then what the
                # client still sends is read and dropped, so nothing resets the GOAWAY away.
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
                raise ConnectionError("goaway")
            body = f"served {state['seen']}\n".encode()
    h = HeadersFrame(stream_id, encoder.encode([(":status", "200"), ("content-length", str(len(body)))]))
    h.flags.add("END_HEADERS")
    d = DataFrame(stream_id, body)
    d.flags.add("END_STREAM")
    conn.sendall(h.serialize() + d.serialize())


def main():
    mode, limit = sys.argv[1], int(sys.argv[2])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, mode, limit), daemon=True).start()


if __name__ == "__main__":
    main()
