"""A real QUIC exchange for captures/quic/record.sh, with aioquic (PyPI): `server CERT KEY
PORT` answers on 127.0.0.1:PORT; `client PORT KEYLOG` connects with SNI quic.test and ALPN h3,
pings, and closes. aioquic builds its own Initials, CRYPTO frames and ClientHello."""

import asyncio
import ssl
import sys

from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration


async def server(cert, key, port):
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    cfg.load_cert_chain(cert, key)
    await serve("127.0.0.1", port, configuration=cfg)
    await asyncio.Future()


async def client(port, keylog):
    cfg = QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name="quic.test", verify_mode=ssl.CERT_NONE
    )
    with open(keylog, "a") as log:
        cfg.secrets_log_file = log
        async with connect("127.0.0.1", port, configuration=cfg) as conn:
            await conn.ping()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        asyncio.run(client(int(sys.argv[2]), sys.argv[3]))
