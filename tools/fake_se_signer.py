"""The signing half of the unix port's fake SE05x: a real P-256 key behind 127.0.0.1.

MicroPython's unix port has no EC arithmetic, so `tether.hal.fake_se05x.RemoteSigner` sends
each digest here and gets an ASN.1 DER ECDSA signature back, made with a real key, so a
test (or a TLS peer) can verify it with the certificate's public key.

Wire: request = 1 byte digest length + digest; reply = 1 byte signature length + signature,
or a single 0 byte when the digest is refused (not 20/28/32/48/64 bytes, like the chip).

    python -m tools.fake_se_signer KEY.der [--port N]    prints "listening on 127.0.0.1:N"
    server, port = start(key_der)                          from a test; server.shutdown()
"""

import argparse
import socketserver
import sys
import threading

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import load_der_private_key

_HASHES = {
    20: hashes.SHA1,
    28: hashes.SHA224,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def start(key_der, port=0):
    key = load_der_private_key(key_der, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the fake SE05x holds EC keys only")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                n = _recv_exact(self.request, 1)[0]
                digest = _recv_exact(self.request, n)
            except ConnectionError:
                return
            algo = _HASHES.get(len(digest))
            if algo is None:
                self.request.sendall(b"\x00")
                return
            sig = key.sign(digest, ec.ECDSA(utils.Prehashed(algo())))
            self.server.signatures += 1
            self.request.sendall(bytes([len(sig)]) + sig)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.signatures = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.fake_se_signer")
    ap.add_argument("key", help="DER private key (P-256)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    with open(args.key, "rb") as f:
        server, port = start(f.read(), args.port)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
