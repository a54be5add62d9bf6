#!/usr/bin/python3
"""A test origin server for localcap's integration tests and benchmarks.

HTTP/1.1 with keep-alive, plain or TLS (--cert/--key), one thread per
connection.  What it serves:

  GET  /f/NAME        the file NAME from --dir (Content-Length)
  GET  /chunked?n=N   N pseudo-random bytes, chunked, with a trailer
                      "X-Sha256" carrying their SHA-256
  GET  /bytes?n=N     N zero bytes (Content-Length), for benchmarks
  POST /sha256        the SHA-256 (hex) of the request body (Content-Length
  PUT  /sha256        or chunked), and its length in X-Length
  GET  /ws            a WebSocket handshake (RFC 6455), then every text or
                      binary frame is echoed back until a close frame
  GET  /small         a short text answer (requests/s benchmarks)

It prints "ready PORT" on stdout once listening.  Test use only.
"""
import argparse
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_line(rf, limit=65536):
    line = rf.readline(limit)
    if not line.endswith(b"\n"):
        raise EOFError
    return line


def read_head(rf):
    line = rf.readline(65536)
    if not line:
        return None
    method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    fields = {}
    while True:
        h = read_line(rf).decode("latin-1").rstrip("\r\n")
        if not h:
            break
        k, v = h.split(":", 1)
        fields[k.strip().lower()] = v.strip()
    return method, target, version, fields


def read_body(rf, fields):
    """Yield the request body in pieces."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size = int(read_line(rf).split(b";")[0].strip(), 16)
            if size == 0:
                while read_line(rf) not in (b"\r\n", b"\n"):
                    pass
                return
            left = size
            while left:
                piece = rf.read(min(left, 65536))
                if not piece:
                    raise EOFError
                left -= len(piece)
                yield piece
            read_line(rf)
    else:
        left = int(fields.get("content-length", "0"))
        while left:
            piece = rf.read(min(left, 65536))
            if not piece:
                raise EOFError
            left -= len(piece)
            yield piece


def answer(wf, status, body, ctype="text/plain", extra=()):
    head = ["HTTP/1.1 %d %s" % (status, {200: "OK", 404: "Not Found",
            400: "Bad Request"}.get(status, "Status")),
            "Content-Type: " + ctype, "Content-Length: %d" % len(body)]
    head.extend(extra)
    wf.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    wf.flush()


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def ws_read(rf):
    b0, b1 = rf.read(2)
    opcode, masked, n = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", rf.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", rf.read(8))[0]
    mask = rf.read(4) if masked else b"\0\0\0\0"
    data = bytearray(rf.read(n))
    for i in range(len(data)):
        data[i] ^= mask[i % 4]
    return opcode, bytes(data)


def websocket(rf, wf, fields):
    key = fields.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
    wf.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
             b"\r\n\r\n")
    wf.flush()
    while True:
        opcode, data = ws_read(rf)
        if opcode == 8:
            wf.write(ws_frame(8, data))
            wf.flush()
            return
        if opcode in (1, 2):
            wf.write(ws_frame(opcode, data))
            wf.flush()


def serve(conn, args, ctx):
    if ctx is not None:
        try:
            conn = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
    rf = conn.makefile("rb")
    wf = conn.makefile("wb")
    try:
        while True:
            req = read_head(rf)
            if req is None:
                return
            method, target, _, fields = req
            url = urllib.parse.urlsplit(target)
            query = urllib.parse.parse_qs(url.query)
            path = url.path
            close = fields.get("connection", "").lower() == "close"
            extra = ["Connection: close"] if close else []
            if path == "/ws" and fields.get("upgrade", "").lower() == "websocket":
                websocket(rf, wf, fields)
                return
            if method in ("POST", "PUT") and path == "/sha256":
                h, n = hashlib.sha256(), 0
                for piece in read_body(rf, fields):
                    h.update(piece)
                    n += len(piece)
                answer(wf, 200, h.hexdigest().encode() + b"\n",
                       extra=extra + ["X-Length: %d" % n])
            elif method == "GET" and path.startswith("/f/"):
                name = os.path.basename(path[3:])
                try:
                    with open(os.path.join(args.dir, name), "rb") as f:
                        body = f.read()
                except OSError:
                    answer(wf, 404, b"no such file\n", extra=extra)
                else:
                    answer(wf, 200, body, "application/octet-stream", extra)
            elif method == "GET" and path == "/bytes":
                n = int(query.get("n", ["0"])[0])
                wf.write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" %
                          (n, "".join(e + "\r\n" for e in extra))).encode())
                block = bytes(65536)
                while n:
                    k = min(n, len(block))
                    wf.write(block[:k])
                    n -= k
                wf.flush()
            elif method == "GET" and path == "/chunked":
                n = int(query.get("n", ["0"])[0])
                h = hashlib.sha256()
                wf.write(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                          "Trailer: X-Sha256\r\n%s\r\n" %
                          "".join(e + "\r\n" for e in extra)).encode())
                seed = 1
                while n:
                    k = min(n, 3000 + seed % 5000)
                    piece = hashlib.sha256(str(seed).encode()).digest() * (k // 32 + 1)
                    piece = piece[:k]
                    h.update(piece)
                    wf.write(b"%x\r\n%s\r\n" % (k, piece))
                    n -= k
                    seed += 1
                wf.write(b"0\r\nX-Sha256: " + h.hexdigest().encode() + b"\r\n\r\n")
                wf.flush()
            elif method == "GET" and path == "/small":
                answer(wf, 200, b"ok\n", extra=extra)
            else:
                answer(wf, 404, b"not here\n", extra=extra)
            if close:
                return
    except (EOFError, ValueError, ConnectionError, ssl.SSLError, OSError):
        return
    finally:
        try:
            wf.close()
            rf.close()
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", default=".")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, args.port))
    ls.listen(256)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    print("ready %d" % ls.getsockname()[1], flush=True)
    while True:
        conn, _ = ls.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn, args, ctx),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
