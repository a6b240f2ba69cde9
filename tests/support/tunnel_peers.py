"""Real peers for weft's CONNECT tests, in Python's standard library and websocket-client.

  tunnel_peers.py tls-serve HOST DIR   serves HTTPS on HOST:0 with a self-signed certificate
                                       made in DIR (openssl); prints the port
  tunnel_peers.py tls-serve-with HOST CERT KEY
                                       the same with the given certificate and key
  tunnel_peers.py ws PROXY URL TEXT    a WebSocket client configured with only an HTTP
                                       proxy (it tunnels with CONNECT): sends TEXT to URL,
                                       prints the echo
"""
import http.server
import os
import ssl
import subprocess
import sys
from urllib.parse import urlparse


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"tls hello from {self.server.server_address[1]}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def tls_serve(host, folder):
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=secure", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    tls_serve_with(host, cert, key)


def tls_serve_with(host, cert, key):
    server = http.server.ThreadingHTTPServer((host, 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def ws(proxy, url, text):
    import websocket

    host, port = proxy.rsplit(":", 1)
    conn = websocket.create_connection(
        url, http_proxy_host=host, http_proxy_port=int(port), proxy_type="http", timeout=10
    )
    conn.send(text)
    print(conn.recv(), flush=True)
    conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "tls-serve":
        tls_serve(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "tls-serve-with":
        tls_serve_with(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "ws":
        ws(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}")
