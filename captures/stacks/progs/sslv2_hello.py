"""sslv2_hello.py: sends one SSL 2.0 CLIENT-HELLO (version 0.2, 2-byte record header) built by
scapy's TLS layer (scapy.layers.tls: SSLv2 record, SSLv2ClientHello) over a TCP connection,
reads the answer and closes, as an SSL 2.0-only client would. For captures/record-stacks.sh;
not part of meshsniff. (scapy 2.8's 3-byte header form drops the message type byte, so it is
not used.)

    python3 sslv2_hello.py HOST PORT
"""
import os
import socket
import sys

from scapy.layers.tls.handshake_sslv2 import SSLv2ClientHello
from scapy.layers.tls.record_sslv2 import SSLv2

host, port = sys.argv[1], int(sys.argv[2])
# SSL_CK_RC4_128_WITH_MD5, SSL_CK_DES_192_EDE3_CBC_WITH_MD5, then TLS suites in 00xxyy form.
specs = [0x010080, 0x0700C0, 0x00002F, 0x000035, 0x00000A]
hello = SSLv2ClientHello(version=0x0002, ciphers=specs, challenge=os.urandom(16))
raw = bytes(SSLv2(msg=[hello]))
s = socket.create_connection((host, port), timeout=4)
s.sendall(raw)
try:
    answer = s.recv(4096)
except OSError:
    answer = b""
s.close()
print(f"sent {raw[:3].hex()}… ({len(raw)} bytes), got {len(answer)} bytes")
