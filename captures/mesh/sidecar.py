#!/usr/bin/env python3
# Role: a minimal Istio-like sidecar for the mesh lab (captures/mesh/record.sh), run as uid 1337
# like istio-proxy. Not Envoy: it reproduces only what the wire shows of Envoy's conventions.
#
#   inbound  LISTEN APP_HOST:APP_PORT CERT KEY CA KEYLOG
#       terminates mTLS (client certificate required) on LISTEN (iptables REDIRECTs the app port
#       here) and forwards the cleartext to the application from 127.0.0.6, as Envoy does.
#       A client that does not speak TLS is dropped (STRICT mode).
#   outbound LISTEN CERT KEY CA KEYLOG
#       accepts the application's redirected connections on LISTEN, reads the original
#       destination (SO_ORIGINAL_DST) and originates mTLS to it with Istio's ALPN and
#       `outbound_.<port>_._.<host>` SNI.
import select
import socket
import ssl
import struct
import sys
import threading

SO_ORIGINAL_DST = 80
ISTIO_ALPN = ["istio-http/1.1", "istio", "http/1.1"]


def relay(a, b):
    """Copies both ways in one thread until either side ends (OpenSSL objects must not be
    read and written from two threads at once: a two-thread relay hung now and then)."""
    peer = {a: b, b: a}
    try:
        while True:
            ready = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select([a, b], [], [], 30)
                if not ready:
                    return
            for s in ready:
                try:
                    data = s.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                peer[s].sendall(data)
    finally:
        a.close()
        b.close()


def listener(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    return s


def inbound(listen, app, cert, key, ca, keylog):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(ISTIO_ALPN)
    ctx.keylog_filename = keylog
    app_host, app_port = app.rsplit(":", 1)
    srv = listener(listen)

    def serve(conn):
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            # Not TLS, or no client certificate: STRICT mode drops the connection.
            conn.close()
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.bind(("127.0.0.6", 0))
        up.connect((app_host, int(app_port)))
        relay(tls, up)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def outbound(listen, cert, key, ca, keylog):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False  # Istio verifies the SPIFFE identity, not a DNS name
    ctx.set_alpn_protocols(ISTIO_ALPN)
    ctx.keylog_filename = keylog
    srv = listener(listen)

    def serve(conn):
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port, ip = struct.unpack_from("!2xH4s", raw)
        host = socket.inet_ntoa(ip)
        sni = f"outbound_.{port}_._.server.default.svc.cluster.local"
        up = socket.create_connection((host, port))
        tls = ctx.wrap_socket(up, server_hostname=sni)
        relay(conn, tls)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "inbound":
        inbound(*args)
    elif mode == "outbound":
        outbound(*args)
    else:
        sys.exit(f"sidecar.py: unknown mode {mode}")
