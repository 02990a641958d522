"""Real HTTP and HTTPS servers on 127.0.0.1 for tether.http's tests and bench (CPython).

`Servers(pki)` starts, each in its own thread on a free port:
- `http`: CPython's http.server (ThreadingHTTPServer, HTTP/1.1) with the routes below;
- `https`: the same routes over TLS with the test PKI's server certificate (localhost and
  127.0.0.1), handshakes done in the connection's thread so a stuck client blocks no one;
- `other_ca`, `wrong_host`: the same over TLS with a certificate from another CA, and one
  for wrong-host.invalid;
- `stall_tls`: a socket that listens and never accepts: TCP connects, TLS never answers.
`close()` stops them all. `hits` counts requests per path (all servers together).

Routes (GET unless said):
    /json                      200 {"hello": "world"}
    POST /echo                 201 JSON: method, path, authorization, content_type,
                               accept, body (the request body parsed as JSON)
    /error?status=N            N {"errors": {"detail": "..."}} (any method)
    /chunked?n=N               N pattern bytes, chunked in pieces of 1000
    /big?n=N[&chunked=1]       N pattern bytes, Content-Length (or chunked), 4 KB writes
    /redirect                  302 to /redirect-target (which nobody should fetch)
    /slow                      Content-Length 100, then one byte every 100 ms
    /raw/NAME                  a scripted misbehaving reply from RAW, then close
"""

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def pattern(n):
    """The deterministic body of /big and /chunked: offsets that move show up."""
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))


_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

RAW = {
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"t" * 10,
    "lying_chunk_short": _CHUNKED_HEAD + b"3\r\nhello\r\n0\r\n\r\n",
    "lying_chunk_long": _CHUNKED_HEAD + b"50\r\nhello\r\n",
    "huge_headers": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 6000 + b"\r\n\r\n",
    "huge_body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"b" * 1000,
    "huge_body_chunked": _CHUNKED_HEAD + (b"1000\r\n" + b"c" * 4096 + b"\r\n") * 8,
    "until_close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"u" * 3000,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _count(self):
        path = urlsplit(self.path).path
        hits = self.server.hits
        with self.server.lock:
            hits[path] = hits.get(path, 0) + 1
        return path, {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _send(self, status, body, ctype="application/json", extra=()):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _chunked(self, data, piece):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(0, len(data), piece):
            part = data[i : i + piece]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def do_GET(self):
        path, q = self._count()
        if path == "/json":
            self._send(200, {"hello": "world"})
        elif path == "/error":
            self._send(int(q.get("status", 404)), {"errors": {"detail": "refused by test"}})
        elif path == "/chunked":
            self._chunked(pattern(int(q["n"])), 1000)
        elif path == "/big":
            data = pattern(int(q["n"]))
            if q.get("chunked"):
                self._chunked(data, 4096)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 4096):
                self.wfile.write(data[i : i + 4096])
            self.close_connection = True
        elif path == "/redirect":
            self._send(302, b"", "text/plain", [("Location", "/redirect-target")])
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            try:
                for _ in range(100):
                    self.wfile.write(b"s")
                    self.wfile.flush()
                    self.server.stopping.wait(0.1)
            except OSError:  # the client gave up: expected
                pass
            self.close_connection = True
        elif path.startswith("/raw/"):
            self.wfile.write(RAW[path[5:]])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(404, {"errors": {"detail": "no route " + path}})

    def do_POST(self):
        path, q = self._count()
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if path == "/error":
            self._send(int(q.get("status", 404)), {"errors": {"detail": "refused by test"}})
            return
        if path != "/echo":
            self._send(404, {"errors": {"detail": "no route " + path}})
            return
        self._send(
            201,
            {
                "method": "POST",
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
                "body": json.loads(raw) if raw else None,
            },
        )

    def do_HEAD(self):
        self._count()
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls = None  # an ssl.SSLContext: each connection's thread does its handshake

    def finish_request(self, request, client_address):
        # http.server writes the head and the body apart: without this, Nagle holds the
        # body until the client's delayed ACK (~40 ms), a server artefact in every figure
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):  # a client that refused our certificate
                request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):  # clients that hang up: quiet
        pass


def _tls_context(cert_pem, key_pem):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    return ctx


class Servers:
    def __init__(self, pki):
        self.hits = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._servers = []
        self._threads = []
        self.urls = {}
        self._start("http", None)
        self._start("https", _tls_context(pki["server_cert_pem"], pki["server_key_pem"]))
        self._start(
            "other_ca",
            _tls_context(pki["server_other_ca_cert_pem"], pki["server_other_ca_key_pem"]),
        )
        self._start(
            "wrong_host",
            _tls_context(pki["server_wrong_host_cert_pem"], pki["server_wrong_host_key_pem"]),
        )
        self._stall = socket.socket()
        self._stall.bind(("127.0.0.1", 0))
        self._stall.listen(8)
        self.urls["stall_tls"] = "https://127.0.0.1:%d" % self._stall.getsockname()[1]

    def _start(self, name, tls):
        srv = _Server(("127.0.0.1", 0), Handler)
        srv.tls = tls
        srv.hits, srv.lock, srv.stopping = self.hits, self.lock, self.stopping
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
        t.daemon = True
        t.start()
        self._servers.append(srv)
        self._threads.append(t)
        scheme = "https" if tls else "http"
        self.urls[name] = "%s://127.0.0.1:%d" % (scheme, srv.server_address[1])

    def close(self):
        self.stopping.set()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(5)
        self._stall.close()
