#!/usr/bin/env python3
"""Many h2c (prior-knowledge HTTP/2, no TLS) uploads nobody answers, for
test/integration/proxyd_memory.sh.  Raw frames and HPACK by hand (the
standard library has no HTTP/2), flow control honoured both ways.

  h2upload.py server ADDR PORT SIZE OUT [HOLD]
      An origin that reads every upload and never answers: it grants
      windows of 2^31-1 at once, and writes to OUT (rewritten as it grows)
      how many streams delivered SIZE bytes.  A connection ends when its
      peer closes or sends GOAWAY.  With HOLD, it grants no window at all
      (64 KiB less one per connection, RFC 9113's initial) until the file
      HOLD exists: uploads wait in the proxy.

  h2upload.py client ADDR PORT CONNS STREAMS SIZE GO SENT
      CONNS connections at once, each with STREAMS POSTs of SIZE bytes
      (/h2up/<conn>/<stream>), within the windows the peer grants; writes
      to SENT how many streams have sent all their bytes, then holds every
      connection until the file GO exists, and closes.  Gives up after
      90 s.
"""
import asyncio
import os
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 1, 1, 4
MAXWIN = 0x7FFFFFFF


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


async def read_frame(r):
    hdr = await r.readexactly(9)
    n = int.from_bytes(hdr[:3], "big")
    sid = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
    return hdr[3], hdr[4], sid, (await r.readexactly(n)) if n else b""


def count(path, n):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.rename(path + ".tmp", path)


# --- the origin ---------------------------------------------------------------

GRANT = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, MAXWIN)) + \
    frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAXWIN - 65535))


async def server(addr, port, size, out, hold):
    full = 0

    async def release(w):
        while not os.path.exists(hold):
            await asyncio.sleep(0.1)
        w.write(GRANT)

    async def conn(r, w):
        nonlocal full
        got = {}
        w.write(frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 1000)))
        if hold is None:
            w.write(GRANT)
        else:
            rel = asyncio.ensure_future(release(w))
        try:
            if await r.readexactly(24) != PREFACE:
                return
            while True:
                t, fl, sid, p = await read_frame(r)
                if t == SETTINGS and not fl & ACK:
                    w.write(frame(SETTINGS, ACK, 0))
                elif t == PING and not fl & ACK:
                    w.write(frame(PING, ACK, 0, p))
                elif t == GOAWAY:
                    break
                elif t == DATA:
                    before = got.get(sid, 0)
                    got[sid] = before + len(p)
                    if before < size <= got[sid]:
                        full += 1
                        count(out, full)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if hold is not None:
            rel.cancel()
        w.close()

    srv = await asyncio.start_server(conn, addr, port, backlog=1024)
    print("serving", flush=True)
    async with srv:
        await srv.serve_forever()


# --- the uploader -------------------------------------------------------------

def lit(name, value):
    """A literal field, not indexed, new name (RFC 7541 §6.2.2)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return bytes([0, len(n)]) + n + bytes([len(v)]) + v


sent_streams = 0


async def client_conn(addr, port, c, streams, size, body, go, sent):
    global sent_streams
    r, w = await asyncio.open_connection(addr, port)
    sids = [1 + 2 * k for k in range(streams)]
    win = {"conn": 65535, "init": 65535}
    swin = {sid: 65535 for sid in sids}
    moved = asyncio.Event()
    done = asyncio.Event()

    async def reader():
        try:
            while True:
                t, fl, sid, p = await read_frame(r)
                if t == SETTINGS and not fl & ACK:
                    for i in range(0, len(p) - 5, 6):
                        k, v = struct.unpack(">HI", p[i:i + 6])
                        if k == 4:
                            for s in swin:
                                swin[s] += v - win["init"]
                            win["init"] = v
                    w.write(frame(SETTINGS, ACK, 0))
                elif t == WINDOW_UPDATE:
                    inc = struct.unpack(">I", p)[0] & 0x7FFFFFFF
                    if sid == 0:
                        win["conn"] += inc
                    elif sid in swin:
                        swin[sid] += inc
                elif t == PING and not fl & ACK:
                    w.write(frame(PING, ACK, 0, p))
                elif t in (GOAWAY, RST):
                    print("conn %d: %s on stream %d" %
                          (c, "GOAWAY" if t == GOAWAY else "RST_STREAM", sid),
                          flush=True)
                moved.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            done.set()
            moved.set()

    rt = asyncio.ensure_future(reader())
    w.write(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, MAXWIN)))
    for k, sid in enumerate(sids):
        block = bytes([0x83, 0x86]) + lit(":path", "/h2up/%d/%d" % (c, k)) + \
            lit(":authority", "%s:%d" % (addr, port)) + \
            lit("content-type", "application/octet-stream") + \
            lit("content-length", str(size))
        w.write(frame(HEADERS, END_HEADERS, sid, block))
    left = {sid: size for sid in sids}
    while any(left.values()) and not done.is_set():
        moved.clear()
        progress = False
        for sid in sids:
            n = min(16384, left[sid], win["conn"], swin[sid])
            if n <= 0:
                continue
            off = size - left[sid]
            left[sid] -= n
            win["conn"] -= n
            swin[sid] -= n
            w.write(frame(DATA, END_STREAM if left[sid] == 0 else 0, sid,
                          body[off:off + n]))
            progress = True
            if left[sid] == 0:
                sent_streams += 1
        await w.drain()
        if sent_streams and not any(left.values()):
            count(sent, sent_streams)
        if not progress:
            await moved.wait()
    count(sent, sent_streams)
    while not os.path.exists(go) and not done.is_set():
        await asyncio.sleep(0.1)
    w.close()
    rt.cancel()


async def client(addr, port, conns, streams, size, go, sent):
    body = os.urandom(size)
    await asyncio.wait_for(asyncio.gather(*(
        client_conn(addr, port, c, streams, size, body, go, sent)
        for c in range(conns))), 90)


def main():
    a = sys.argv
    if len(a) in (6, 7) and a[1] == "server":
        asyncio.run(server(a[2], int(a[3]), int(a[4]), a[5],
                           a[6] if len(a) == 7 else None))
    elif len(a) == 9 and a[1] == "client":
        asyncio.run(client(a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]),
                           a[7], a[8]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
