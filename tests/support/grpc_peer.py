"""A real gRPC peer (grpcio) for weft's tests, without generated code.

  grpc_peer.py serve HOST      serves weft.test.Echo on HOST:0 and prints the port
  grpc_peer.py client TARGET AUTHORITY
                               calls Echo (unary), Chat (bidirectional) and Fail through
                               TARGET with :authority AUTHORITY; prints the results as JSON
  grpc_peer.py proxied PROXY TARGET
                               the same calls to TARGET as an app configured with only
                               http_proxy=PROXY makes them (grpcio tunnels with CONNECT)
"""
import os
import json
import queue
import sys
from concurrent import futures

import grpc


def ident(x):
    return x


def echo(request, context):
    return b"echo:" + request


def chat(requests, context):
    for message in requests:
        yield b"echo:" + message


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def serve(host):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo, ident, ident),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("weft.test.Echo", handlers),)
    )
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def client(target, authority):
    options = [("grpc.default_authority", authority), ("grpc.enable_http_proxy", 0)]
    calls(grpc.insecure_channel(target, options=options))


def proxied(proxy, target):
    for name in ("no_proxy", "NO_PROXY", "no_grpc_proxy", "grpc_proxy", "https_proxy", "HTTPS_PROXY"):
        os.environ.pop(name, None)
    os.environ["http_proxy"] = f"http://{proxy}"
    calls(grpc.insecure_channel(target))


def calls(channel):
    with channel:
        out = {}
        unary = channel.unary_unary("/weft.test.Echo/Echo", ident, ident)
        out["unary"] = unary(b"hi", timeout=10).decode()

        # Truly interleaved: each message is sent only after the previous echo arrived.
        chat_call = channel.stream_stream("/weft.test.Echo/Chat", ident, ident)
        outgoing = queue.Queue()
        outgoing.put(b"m0")

        def requests():
            while True:
                m = outgoing.get()
                if m is None:
                    return
                yield m

        replies = []
        for i, reply in enumerate(chat_call(requests(), timeout=10), start=1):
            replies.append(reply.decode())
            outgoing.put(f"m{i}".encode() if i < 5 else None)
        out["bidi"] = replies

        failing = channel.unary_unary("/weft.test.Echo/Fail", ident, ident)
        try:
            failing(b"x", timeout=10)
            out["fail"] = None
        except grpc.RpcError as e:
            out["fail"] = [e.code().name, e.details()]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "proxied":
        proxied(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2], sys.argv[3])
