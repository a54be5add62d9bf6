#!/usr/bin/env python3
"""A hostile HTTP/2 client for test/integration/proxyd_h2.sh: it speaks h2
over TLS (ALPN h2) and then misbehaves in one of a few known ways, writing
raw frames.  It prints one line: what the server did about it.

  h2attack.py HOST PORT CAFILE MODE [SNI [PROXYHOST:PORT]]
    ping      50,000 PINGs, never reading (the ACKs would pile up)
    settings  5,000 empty SETTINGS frames
    bomb      an HPACK bomb: one 4 KB field indexed, then referenced 100
              times (a few hundred bytes on the wire, 400 KB decoded)
    fields    a request with 200 small header fields (over the field cap)
    data      a stream opened, then 5,000 empty DATA frames on it
    rapid     rapid reset: HEADERS then RST_STREAM, 5,000 times
    cont      a HEADERS frame followed by 100 CONTINUATION frames

With a proxy, it asks it for a CONNECT tunnel to HOST:PORT first.
Output: "goaway CODE", "status headers" (a response's HEADERS came: bomb,
fields),
"closed" (the connection ended without a GOAWAY) or "open" (nothing
happened within the time given).
"""
import socket
import ssl
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


# :method GET, :scheme https, :path /, :authority a (HPACK by hand)
GET = bytes([0x82, 0x87, 0x84, 0x41, 0x01, ord("a")])


def main():
    host, port, cafile, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        sys.argv[4]
    sni = sys.argv[5] if len(sys.argv) > 5 else host
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    if len(sys.argv) > 6:
        ph, pp = sys.argv[6].rsplit(":", 1)
        raw = socket.create_connection((ph, int(pp)), timeout=10)
        raw.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" %
                    (sni.encode(), port, sni.encode(), port))
        resp = b""
        while b"\r\n\r\n" not in resp:
            b = raw.recv(1)
            if not b:
                print("proxy closed")
                return
            resp += b
        if b" 200" not in resp.split(b"\r\n")[0]:
            print("proxy said", resp.split(b"\r\n")[0].decode())
            return
    else:
        raw = socket.create_connection((host, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    if s.selected_alpn_protocol() != "h2":
        print("no h2:", s.selected_alpn_protocol())
        return
    s.sendall(PREFACE + frame(4, 0, 0))
    out = []
    if mode == "ping":
        out = [frame(6, 0, 0, b"p" * 8)] * 50000
    elif mode == "settings":
        out = [frame(4, 0, 0)] * 5000
    elif mode == "bomb":
        # literal with incremental indexing, new name, 4000-byte value
        value = b"a" * 4000
        vlen = bytes([0x7f]) + bytes([((4000 - 127) & 0x7f) | 0x80,
                                      (4000 - 127) >> 7])
        block = bytes([0x40, 6]) + b"x-bomb" + vlen + value
        block += bytes([0xbe]) * 100        # index 62: the field above
        out = [frame(1, 0x5, 1, GET + block)]
    elif mode == "fields":
        # literals without indexing, new names: x-f000: 1, x-f001: 1, ...
        block = b"".join(bytes([0, 6]) + b"x-f%03d" % i + bytes([1]) + b"1"
                         for i in range(200))
        out = [frame(1, 0x5, 1, GET + block)]
    elif mode == "data":
        out = [frame(1, 0x4, 1, GET)] + [frame(0, 0, 1)] * 5000
    elif mode == "rapid":
        for i in range(5000):
            sid = 1 + 2 * i
            out.append(frame(1, 0x5, sid, GET) +
                       frame(3, 0, sid, struct.pack(">I", 8)))
    elif mode == "cont":
        out = [frame(1, 0x1, 1, GET[:3])]
        out += [frame(9, 0, 1, bytes([0, 1, ord("x"), 1, ord("y")]))] * 100
    data = b"".join(out)
    s.settimeout(0.5)
    sent = 0
    deadline = time.time() + 20
    result = "open"
    buf = b""
    # Write it all unless the server stops us; read what comes back only in
    # the modes where a reader would (ping: never).
    while time.time() < deadline:
        if sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except (socket.timeout, ssl.SSLWantWriteError):
                pass
            except OSError:
                # The server stopped reading us: what did it say first?
                sent = len(data)
                continue
            if mode == "ping":
                continue
        try:
            b = s.recv(65536)
        except socket.timeout:
            if sent >= len(data) and mode == "ping":
                break
            continue
        except OSError:
            result = "closed"
            break
        if not b:
            result = "closed"
            break
        buf += b
        while len(buf) >= 9:
            n = struct.unpack(">I", b"\0" + buf[:3])[0]
            if len(buf) < 9 + n:
                break
            t, sid, p = buf[3], struct.unpack(">I", buf[5:9])[0], buf[9:9 + n]
            buf = buf[9 + n:]
            if t == 7:
                print("goaway", struct.unpack(">I", p[4:8])[0])
                return
            if t == 1 and mode in ("bomb", "fields") and sid == 1:
                print("status headers")
                return
    if mode == "ping" and result == "open":
        # Now read: the GOAWAY, or the end.
        s.settimeout(5)
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    result = "closed"
                    break
                buf += b
                i = 0
                while i + 9 <= len(buf):
                    n = struct.unpack(">I", b"\0" + buf[i:i + 3])[0]
                    if buf[i + 3] == 7 and i + 9 + 8 <= len(buf):
                        print("goaway", struct.unpack(
                            ">I", buf[i + 13:i + 17])[0])
                        return
                    i += 9 + n
        except OSError:
            result = "closed"
    print(result)


if __name__ == "__main__":
    main()
