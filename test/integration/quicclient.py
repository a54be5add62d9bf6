#!/usr/bin/env python3
"""A QUIC client's first flight, built with python3-cryptography, for the
QUIC tests: a real TLS 1.3 ClientHello (SNI, ALPN, key share, QUIC transport
parameters) in protected Initial packets (RFC 9000 §17.2.2, RFC 9001 §5,
RFC 9369 for v2), optionally split over several datagrams.

  quicclient.py send HOST PORT --sni NAME [--alpn h3] [--version 1|2|draft-29]
                [--split N] [--wait S] [--repeat N]
      sends the Initial(s) from a connected UDP socket and reports, as one
      JSON line, what came back first and after how long: "icmp" (the socket
      got ECONNREFUSED: an ICMP port unreachable), "version_negotiation",
      "initial" (a server Initial), "other", or "timeout".
  quicclient.py echo ADDR [ADDR...] --port P[,P...] --log FILE
      a UDP server for the tests: logs "LEN SHA256" of every datagram it
      gets and sends it back.
  quicclient.py seeds DIR
      writes fuzz seeds for test/fuzz/fuzz_quic.c (16-bit length-prefixed
      datagrams).
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

VERSIONS = {
    "1": (0x00000001, "38762cf7f55934b34d179ae6a4c80cadccbb7f0a", "quic ", 0),
    "2": (0x6B3343CF, "0dede3def700a6db819381be6e269dcbf9bd2ed9", "quicv2 ", 1),
    "draft-29": (0xFF00001D, "afbfec289993d24c9e9786f19c6111e04390a899", "quic ", 0),
}


def varint(v):
    if v < 64:
        return bytes([v])
    if v < 16384:
        return struct.pack("!H", 0x4000 | v)
    if v < 1 << 30:
        return struct.pack("!I", 0x80000000 | v)
    return struct.pack("!Q", 0xC000000000000000 | v)


def expand_label(secret, label, n):
    full = b"tls13 " + label
    info = struct.pack("!HB", n, len(full)) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), n, info).derive(secret)


def initial_keys(version, dcid, server=False):
    _, salt, prefix, _ = VERSIONS[version]
    h = hmac.HMAC(bytes.fromhex(salt), hashes.SHA256())
    h.update(dcid)
    initial = h.finalize()
    secret = expand_label(initial, b"server in" if server else b"client in", 32)
    p = prefix.encode()
    return (expand_label(secret, p + b"key", 16), expand_label(secret, p + b"iv", 12),
            expand_label(secret, p + b"hp", 16))


def client_hello(sni, alpns, scid):
    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body

    name = sni.encode()
    sni_ext = ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    alpn_list = b"".join(bytes([len(a)]) + a.encode() for a in alpns)
    exts = sni_ext
    if alpns:
        exts += ext(16, struct.pack("!H", len(alpn_list)) + alpn_list)
    exts += ext(10, struct.pack("!HH", 2, 0x001D))                  # groups: x25519
    exts += ext(13, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401))  # sig algs
    exts += ext(43, b"\x02\x03\x04")                                 # TLS 1.3
    exts += ext(51, struct.pack("!HHH", 36, 0x001D, 32) + os.urandom(32))
    exts += ext(45, b"\x01\x01")                                     # psk_dhe_ke
    tp = (varint(0x0F) + varint(len(scid)) + scid                     # initial_scid
          + varint(0x04) + varint(4) + varint(1 << 20)               # initial_max_data
          + varint(0x01) + varint(4) + varint(30000))                # max_idle_timeout
    exts += ext(0x39, tp)
    body = (b"\x03\x03" + os.urandom(32) + b"\x00"
            + struct.pack("!HHHH", 6, 0x1301, 0x1302, 0x1303) + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def crypto_frame(data, off):
    return b"\x06" + varint(off) + varint(len(data)) + data


def initial_packet(version, dcid, scid, pn, frames, pad_to=1200, key_dcid=None):
    vnum, _, _, itype = VERSIONS[version]
    key, iv, hp = initial_keys(version, key_dcid or dcid)
    pn_len = 2
    head = (bytes([0xC0 | itype << 4 | (pn_len - 1)]) + struct.pack("!I", vnum)
            + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + varint(0))
    pn_off = len(head) + 2
    plain = frames
    if pn_off + pn_len + len(plain) + 16 < pad_to:
        plain += bytes(pad_to - (pn_off + pn_len + len(plain) + 16))
    length = pn_len + len(plain) + 16
    header = head + struct.pack("!H", 0x4000 | length) + pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + pn.to_bytes(8, "big")))
    sealed = AESGCM(key).encrypt(nonce, plain, header)
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sealed[4 - pn_len:4 - pn_len + 16]) + enc.finalize()
    hb = bytearray(header)
    hb[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        hb[pn_off + i] ^= mask[1 + i]
    return bytes(hb) + sealed


def first_flight(version, sni, alpns, split=1, dcid=None, scid=None):
    dcid = dcid or os.urandom(8)
    scid = scid or os.urandom(8)
    hello = client_hello(sni, alpns, scid)
    step = -(-len(hello) // split)
    out = []
    for i in range(split):
        part = hello[i * step:(i + 1) * step]
        out.append(initial_packet(version, dcid, scid, i, crypto_frame(part, i * step)))
    return out


def classify(data):
    if not data or not data[0] & 0x80:
        return "other"
    if data[1:5] == b"\x00\x00\x00\x00":
        return "version_negotiation"
    return "initial"


def cmd_send(a):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((a.host, a.port))
    s.settimeout(a.wait)
    dgrams = first_flight(a.version, a.sni, a.alpn.split(",") if a.alpn else [], a.split)
    t0 = time.monotonic()
    result = "timeout"
    got = b""
    for _ in range(a.repeat):
        for d in dgrams:
            try:
                s.send(d)
            except ConnectionRefusedError:
                result = "icmp"
                break
        if result != "timeout":
            break
        try:
            got = s.recv(65535)
            result = classify(got)
            break
        except ConnectionRefusedError:
            result = "icmp"
            break
        except socket.timeout:
            continue
    ms = (time.monotonic() - t0) * 1000
    print(json.dumps({"result": result, "ms": round(ms, 1), "sent": len(dgrams),
                      "bytes": [len(d) for d in dgrams],
                      "sha256": [hashlib.sha256(d).hexdigest() for d in dgrams],
                      "reply_len": len(got),
                      "reply_hex": got[:64].hex()}))
    sys.stdout.flush()
    return 0


def cmd_seeds(a):
    os.makedirs(a.dir, exist_ok=True)

    def write(name, dgrams):
        with open(os.path.join(a.dir, name), "wb") as f:
            for d in dgrams:
                f.write(struct.pack("!H", len(d)) + d)

    for v in VERSIONS:
        write("one_initial_" + v.replace("-", ""),
              first_flight(v, "www.example.org", ["h3"], 1))
    write("split3_v1", first_flight("1", "split.example.net", ["h3", "h3-29"], 3))
    dg = first_flight("1", "coalesced.example", ["h3"], 2)
    write("coalesced_v1", [dg[0] + dg[1]])
    # reversed order, duplicate first datagram
    dg = first_flight("2", "reorder.example.com", [], 3)
    write("reordered_dup_v2", [dg[2], dg[0], dg[0], dg[1]])
    return 0


def cmd_echo(a):
    import selectors
    sel = selectors.DefaultSelector()
    for addr in a.addr:
        for port in a.port.split(","):
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, int(port)))
            sel.register(s, selectors.EVENT_READ)
    log = open(a.log, "a", buffering=1)
    print("serving", flush=True)
    while True:
        for key, _ in sel.select():
            d, peer = key.fileobj.recvfrom(65535)
            log.write("%d %s\n" % (len(d), hashlib.sha256(d).hexdigest()))
            key.fileobj.sendto(d, peer)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--sni", required=True)
    s.add_argument("--alpn", default="h3")
    s.add_argument("--version", default="1", choices=sorted(VERSIONS))
    s.add_argument("--split", type=int, default=1)
    s.add_argument("--wait", type=float, default=1.0)
    s.add_argument("--repeat", type=int, default=1)
    e = sub.add_parser("echo")
    e.add_argument("addr", nargs="+")
    e.add_argument("--port", required=True, help="PORT[,PORT...]")
    e.add_argument("--log", required=True)
    d = sub.add_parser("seeds")
    d.add_argument("dir")
    a = p.parse_args()
    return {"send": cmd_send, "echo": cmd_echo, "seeds": cmd_seeds}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
