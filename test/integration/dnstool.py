#!/usr/bin/env python3
"""A tiny DNS server and client for the capture tests (no DNS library).

  dnstool.py serve ADDR...    answer on UDP port 53 of each ADDR: NAME A and
                              AAAA with the addresses given by --a/--aaaa,
                              NXDOMAIN for any other name; anything that is
                              not a query it can parse is sent back as is
  dnstool.py query SERVER4 SERVER6 NAME
                              what a resolver does: A and AAAA for NAME on
                              one socket to SERVER4, A for nx.NAME over IPv6,
                              then 9 bytes that are no DNS message; prints
                              "pid=P a=... aaaa=... nx=RCODE junk=echoed"
Every wait is bounded; the client exits 1 on any surprise.
"""
import os
import select
import socket
import struct
import sys

T_A, T_AAAA = 1, 28
JUNK = b"\x13\x37not dns"  # shorter than a DNS header


def read_name(msg, pos):
    labels = []
    while True:
        n = msg[pos]
        pos += 1
        if n == 0:
            return ".".join(labels), pos
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[pos:pos + n].decode("ascii"))
        pos += n


def encode_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def answer(msg, name, a, aaaa):
    """The response to query MSG, or None if MSG is no query we read."""
    try:
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        if len(msg) < 12 or flags & 0x8000 or qd != 1:
            return None
        qname, pos = read_name(msg, 12)
        qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
    except (ValueError, struct.error, IndexError, UnicodeDecodeError):
        return None
    question = msg[12:pos + 4]
    rrs = []
    if qname == name and qtype == T_A:
        rrs.append((T_A, socket.inet_pton(socket.AF_INET, a)))
    elif qname == name and qtype == T_AAAA:
        rrs.append((T_AAAA, socket.inet_pton(socket.AF_INET6, aaaa)))
    rcode = 0 if qname == name else 3
    out = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(rrs), 0, 0)
    out += question
    for t, data in rrs:
        # The name as a pointer to the question's (offset 12).
        out += struct.pack("!HHHIH", 0xC00C, t, 1, 60, len(data)) + data
    return out


def serve(args):
    name, a, aaaa = args.name, args.a, args.aaaa
    socks = []
    for addr in args.addrs:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((addr, 53))
        socks.append(s)
    print("serving", flush=True)
    while True:
        ready, _, _ = select.select(socks, [], [], args.timeout)
        if not ready:
            return
        for s in ready:
            msg, peer = s.recvfrom(65535)
            out = answer(msg, name, a, aaaa)
            s.sendto(msg if out is None else out, peer)


def query_msg(qid, name, qtype):
    return (struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) +
        encode_name(name) + struct.pack("!HH", qtype, 1))


def ask(s, qid, name, qtype):
    """Sends one query; returns (rcode, [rdata as text])."""
    s.send(query_msg(qid, name, qtype))
    msg = s.recv(65535)
    rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid or not flags & 0x8000 or qd != 1:
        raise AssertionError(f"bad response to {name}: {msg!r}")
    _, pos = read_name(msg, 12)
    pos += 4
    out = []
    for _ in range(an):
        if msg[pos] & 0xC0 != 0xC0:
            raise AssertionError("answer name is not a pointer")
        t, _, _, n = struct.unpack("!HHIH", msg[pos + 2:pos + 12])
        data = msg[pos + 12:pos + 12 + n]
        pos += 12 + n
        fam = socket.AF_INET if t == T_A else socket.AF_INET6
        out.append(socket.inet_ntop(fam, data))
    return flags & 0xF, out


def query(args):
    print(f"pid={os.getpid()}", end="", flush=True)
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.settimeout(args.timeout)
    s4.connect((args.server4, 53))
    rc, a = ask(s4, 0x1111, args.name, T_A)
    rc6, aaaa = ask(s4, 0x2222, args.name, T_AAAA)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.settimeout(args.timeout)
    s6.connect((args.server6, 53))
    nx, _ = ask(s6, 0x3333, "nx." + args.name, T_A)
    sj = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sj.settimeout(args.timeout)
    sj.connect((args.server4, 53))
    sj.send(JUNK)
    junk = "echoed" if sj.recv(65535) == JUNK else "changed"
    print(f" a={','.join(a)}/{rc} aaaa={','.join(aaaa)}/{rc6} nx={nx} "
        f"junk={junk}")


def main():
    import argparse
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("addrs", nargs="+")
    sv.add_argument("--name", required=True)
    sv.add_argument("--a", required=True)
    sv.add_argument("--aaaa", required=True)
    sv.add_argument("--timeout", type=float, default=120)
    q = sub.add_parser("query")
    q.add_argument("server4")
    q.add_argument("server6")
    q.add_argument("name")
    q.add_argument("--timeout", type=float, default=5)
    args = p.parse_args()
    try:
        serve(args) if args.cmd == "serve" else query(args)
    except Exception as e:  # one line, not a traceback
        print(f" error: {type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
