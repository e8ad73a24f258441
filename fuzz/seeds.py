#!/usr/bin/env python3
"""Cuts per-target fuzz seeds out of the sample captures (captures/*.pcap, *.pcapng), in the
input format each fuzz target reads (see fuzz/fuzz_targets/*.rs and src/fuzzing.rs). tshark
does the reading and TCP reassembly, so the seeds do not depend on the code under test.
Deterministic: same captures and tshark version, same files (named by capture and stream).

    fuzz/seeds.py [CAPTURES_DIR [CORPUS_DIR]]      # defaults: captures/ and fuzz/corpus/

Formats written (one file per TCP stream, UDP stream or direction; duplicates dropped):
  capture     the capture file itself
  merge       u32 LE length of the first stream, then a pcapng capture twice (two exec streams)
  tls         u16 LE client length, client bytes, server bytes: the reassembled byte streams of
              each TLS flow (a STARTTLS flow cut at its first TLS record), each side <= 16 KiB
  http        u16 LE client length, one byte chunk size (63: 64-byte chunks), client bytes,
              server bytes: each HTTP/1.x or h2c flow, each side <= 16 KiB
  reassembly  per direction of each TCP stream, 3 bytes per segment as tshark saw them in
              capture order (retransmissions and reordering kept): u16 LE offset of the segment
              from the first data byte, u8 length (longer segments cut into 255-byte pieces);
              offsets past 65535 end the seed
  quic        per UDP stream that carries QUIC, the client's datagrams (the first 16), each as a
              u16 BE length and the UDP payload (the format of check_quic_datagrams)
  quic_crypto plaintext client Initials in the format of check_quic_crypto (per packet a
              control byte, 0x03: 4-byte packet number, a u16 BE length and the frames): the
              client Initials of each QUIC stream as tshark decrypts them, and the ClientHello
              of every TLS flow as CRYPTO frames in order (up to 1,100 bytes a packet, then
              PADDING to 1,162 bytes as a client pads)
"""

import hashlib
import os
import re
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "captures")
CORPUS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "corpus")
SIDE_CAP = 16 * 1024
TARGETS = ["capture", "merge", "tls", "http", "reassembly", "quic", "quic_crypto"]
METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"PRI * ")

written = {t: set() for t in TARGETS}


def tshark(*args):
    out = subprocess.run(
        ["tshark", "-n", "-o", "tcp.relative_sequence_numbers:TRUE", *args],
        check=True,
        capture_output=True,
    )
    return out.stdout.decode()


def write(target, name, data):
    """One seed; a file whose bytes another seed of the target already has is not written."""
    digest = hashlib.sha1(data).hexdigest()
    if not data or digest in written[target]:
        return
    written[target].add(digest)
    with open(os.path.join(CORPUS, target, "seed-" + name), "wb") as f:
        f.write(data)


def tcp_streams(path):
    """Stream index -> (client bytes, server bytes), reassembled by tshark's `follow`."""
    ids = sorted({int(x) for x in tshark("-r", path, "-T", "fields", "-e", "tcp.stream").split()})
    if not ids:
        return {}
    args = []
    for i in ids:
        args += ["-z", f"follow,tcp,raw,{i}"]
    out = tshark("-r", path, "-q", *args)
    streams = {}
    for block in out.split("=" * 67):
        m = re.search(r"Filter: tcp.stream eq (\d+)", block)
        if not m:
            continue
        sides = [bytearray(), bytearray()]
        for line in block.splitlines():
            if re.fullmatch(r"\t?[0-9a-f]+", line):
                sides[1 if line.startswith("\t") else 0] += bytes.fromhex(line.strip())
        c, s = bytes(sides[0]), bytes(sides[1])
        # Node 0 is whoever sent first; a mid-stream capture may start with the server.
        if looks_like_client(s) and not looks_like_client(c):
            c, s = s, c
        streams[int(m.group(1))] = (c, s)
    return streams


def looks_like_client(b):
    return b.startswith(METHODS) or (len(b) > 5 and b[0] == 22 and b[5] == 1)


def tls_start(b):
    """Offset of the first TLS handshake record (22, 3, x), or None."""
    m = re.search(rb"\x16\x03[\x00-\x04]", b)
    return m.start() if m else None


def reassembly_seeds(path, name):
    rows = tshark(
        "-r", path, "-Y", "tcp", "-T", "fields", "-E", "separator=,",
        "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.len",
        "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
    )
    dirs = {}
    for row in rows.splitlines():
        f = row.split(",")
        if len(f) < 6 or not f[2]:
            continue
        stream, port, seq, length = int(f[0]), int(f[1]), int(f[2]), int(f[3] or 0)
        dirs.setdefault((stream, port), []).append((seq, length))
    for (stream, port), segs in sorted(dirs.items()):
        data = [s for s in segs if s[1] > 0]
        if not data:
            continue
        # Offsets from the lowest data sequence number (the first byte after the SYN, or the
        # first byte seen in a capture that starts mid-stream).
        base = min(s[0] for s in data)
        out = bytearray()
        for seq, length in data:
            off = seq - base
            while length > 0 and 0 <= off <= 0xFFFF:
                piece = min(length, 255)
                out += struct.pack("<HB", off, piece)
                off += piece
                length -= piece
            if off > 0xFFFF:
                break
        write("reassembly", f"{name}-s{stream}-p{port}", bytes(out))


def crypto_frames(data, pn_ctl=0x03):
    """Plaintext Initial payloads carrying `data` as CRYPTO frames, ~1,100 bytes a packet."""
    packets = bytearray()
    off = 0
    while off < len(data) or off == 0:
        piece = data[off:off + 1100]
        frame = bytes([0x06]) + varint(off) + varint(len(piece)) + piece
        frame += bytes(max(0, 1162 - len(frame)))
        packets += bytes([pn_ctl]) + struct.pack(">H", len(frame)) + frame
        off += len(piece)
        if not piece:
            break
    return bytes(packets)


def varint(v):
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack(">H", v | 0x4000)
    return struct.pack(">I", v | 0x8000_0000)


def quic_seeds(path, name):
    rows = tshark(
        "-r", path, "-Y", "quic", "-T", "fields", "-E", "separator=;",
        "-e", "udp.stream", "-e", "udp.srcport", "-e", "udp.payload",
    )
    clients, datagrams = {}, {}
    for row in rows.splitlines():
        f = row.split(";")
        if len(f) < 3 or not f[2]:
            continue
        stream, port = int(f[0]), int(f[1])
        if port != clients.setdefault(stream, port):
            continue
        datagrams.setdefault(stream, []).append(bytes.fromhex(f[2]))
    for stream, ds in sorted(datagrams.items()):
        out = b"".join(struct.pack(">H", len(d)) + d for d in ds[:16])
        write("quic", f"{name}-u{stream}", out)
        # The plaintext of the client's Initials, as tshark decrypts them (its "Decrypted
        # QUIC" data source), one packet each.
        port = clients[stream]
        dump = tshark("-r", path, "-x", "-Y", f"udp.stream == {stream} && udp.srcport == {port}"
                      " && quic.long.packet_type == 0")
        packets = bytearray()
        for section in re.split(r"\n(?=\S[^\n]*\(\d+ bytes\):)", dump):
            if not section.startswith("Decrypted QUIC"):
                continue
            plain = bytearray()
            for line in section.splitlines()[1:]:
                m = re.match(r"[0-9a-f]{4}  ((?:[0-9a-f]{2} ){1,16})", line)
                if m:
                    plain += bytes.fromhex(m.group(1))
            packets += bytes([0x03]) + struct.pack(">H", len(plain)) + plain
        write("quic_crypto", f"{name}-u{stream}", bytes(packets))


def main():
    for t in TARGETS:
        os.makedirs(os.path.join(CORPUS, t), exist_ok=True)
    files = sorted(
        f for f in os.listdir(CAPTURES) if f.endswith(".pcap") or f.endswith(".pcapng")
    )
    for fname in files:
        path = os.path.join(CAPTURES, fname)
        name = fname.rsplit(".", 1)[0]
        with open(path, "rb") as f:
            whole = f.read()
        write("capture", name, whole)
        if fname.endswith(".pcapng"):
            write("merge", name, struct.pack("<I", len(whole)) + whole + whole)
        for sid, (c, s) in sorted(tcp_streams(path).items()):
            tag = f"{name}-s{sid}"
            if c.startswith(METHODS) or s.startswith(b"HTTP/"):
                c, s = c[:SIDE_CAP], s[:SIDE_CAP]
                write("http", tag, struct.pack("<HB", len(c), 63) + c + s)
                continue
            ct, st = tls_start(c), tls_start(s)
            if ct is None or st is None:
                continue
            c, s = c[ct:ct + SIDE_CAP], s[st:st + SIDE_CAP]
            write("tls", tag, struct.pack("<H", len(c)) + c + s)
            # The ClientHello message (the first record's body), as QUIC CRYPTO data.
            if len(c) > 9 and c[5] == 1:
                rec_len = struct.unpack(">H", c[3:5])[0]
                msg_len = int.from_bytes(c[6:9], "big")
                if msg_len + 4 <= rec_len:
                    write("quic_crypto", tag, crypto_frames(c[5:5 + 4 + msg_len]))
        reassembly_seeds(path, name)
        quic_seeds(path, name)
    for t in TARGETS:
        print(f"{t}: {len(written[t])} seeds")


if __name__ == "__main__":
    main()
