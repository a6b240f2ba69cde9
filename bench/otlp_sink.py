"""An OTLP/gRPC collector that takes every export and keeps nothing: what the traced
benchmark configurations send their spans to, so the proxies' export path runs whole
(encoding, HTTP/2, the answer) without a real collector's cost on the machine.
Usage: otlp_sink.py PORT"""

import sys
from concurrent import futures

import grpc

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Sink(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method != EXPORT:
            return None
        # An empty ExportTraceServiceResponse is zero bytes.
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: b"",
            request_deserializer=None,
            response_serializer=None,
        )


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((Sink(),))
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
