#!/usr/bin/env python3
"""A peer that breaks the permit table on purpose (common/msg.c).

It speaks localcap's framing by hand (8-byte header, then a protobuf
payload; common/ipc.h), completes the handshake as ROLE, sends one frame of
TYPE that the daemon must refuse, and reports whether the daemon closed the
connection.  With --reconnect (listen mode) it then waits for the daemon's
connector to come back, which shows the daemon is still running.

    rogue_peer.py connect PATH ROLE TYPE [--len N] [--payload HEX]
    rogue_peer.py listen  PATH ROLE TYPE [--len N] [--payload HEX] [--reconnect]

ROLE: ctl, redirectord, netstackd, proxyd.  TYPE: a MsgType number.
--len N writes only a header claiming N payload bytes (an oversize test:
the daemon must judge it on the header).  Prints one line per event:
"handshake", "closed", "reconnected"; exits 0 when the daemon closed.
"""
import argparse
import os
import socket
import struct
import sys

ROLES = {"ctl": 1, "redirectord": 2, "netstackd": 3, "proxyd": 4}
MSG_HELLO, MSG_HELLO_REPLY = 1, 2


def frame(mtype, payload=b"", nfds=0, claimed=None):
    n = len(payload) if claimed is None else claimed
    return struct.pack(">IHBB", n, mtype, nfds, 0) + payload


def hello(role):
    # protocol_version = 1 (field 1), role (field 2)
    return bytes([0x08, 0x01, 0x10, role])


def read_frame(s):
    hdr = b""
    while len(hdr) < 8:
        got = s.recv(8 - len(hdr))
        if not got:
            return None
        hdr += got
    n, mtype, _, _ = struct.unpack(">IHBB", hdr)
    body = b""
    while len(body) < n:
        got = s.recv(n - len(body))
        if not got:
            return None
        body += got
    return mtype


def wait_closed(s, timeout):
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["connect", "listen"])
    ap.add_argument("path")
    ap.add_argument("role", choices=sorted(ROLES))
    ap.add_argument("type", type=int)
    ap.add_argument("--len", type=int)
    ap.add_argument("--nfds", type=int, default=0)
    ap.add_argument("--payload", default="")
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    role = ROLES[a.role]
    payload = bytes.fromhex(a.payload)
    bad = frame(a.type, b"" if a.len is not None else payload, a.nfds, a.len)

    if a.mode == "connect":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        s.connect(a.path)
        s.sendall(frame(MSG_HELLO, hello(role)))
        if read_frame(s) != MSG_HELLO_REPLY:
            print("no HelloReply")
            return 1
    else:
        try:
            os.unlink(a.path)
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(a.path)
        os.chmod(a.path, 0o666)  # the daemon may run as its own user
        ls.listen(4)
        ls.settimeout(a.timeout)
        s, _ = ls.accept()
        s.settimeout(a.timeout)
        if read_frame(s) != MSG_HELLO:
            print("no Hello")
            return 1
        s.sendall(frame(MSG_HELLO_REPLY, hello(role)))
    print("handshake", flush=True)
    s.sendall(bad)
    if not wait_closed(s, a.timeout):
        print("not closed")
        return 1
    print("closed", flush=True)
    if a.mode == "listen" and a.reconnect:
        s2, _ = ls.accept()
        s2.settimeout(a.timeout)
        if read_frame(s2) == MSG_HELLO:
            print("reconnected", flush=True)
        else:
            print("no Hello on reconnect")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
