#!/usr/bin/env python3
"""Clients for the capture-path interop tests: real Linux TCP/UDP sockets
against an echo on the far side of netstackd.

Each TCP connection streams SIZE pseudo-random bytes (seeded per
connection), half-closes its write side, reads the echo until EOF and
compares SHA-256 of both directions. Nothing is held in memory whole.

  netclient.py tcp  HOST PORT --size N --conns C [--timeout S]
  netclient.py abort HOST PORT            RST mid-stream; the next connect works
  netclient.py udp  HOST PORT --count N --size N
Prints one summary line; exits 1 on any mismatch, error or timeout.
"""
import argparse
import asyncio
import hashlib
import random
import socket
import struct
import sys
import time

CHUNK = 65536


def stream(seed, size):
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


async def one_tcp(host, port, size, seed):
    reader, writer = await asyncio.open_connection(host, port)
    sent = hashlib.sha256()

    async def send():
        for chunk in stream(seed, size):
            sent.update(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    got = hashlib.sha256()
    total = 0
    sender = asyncio.create_task(send())
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            break
        got.update(chunk)
        total += len(chunk)
    await sender
    writer.close()
    if total != size or got.digest() != sent.digest():
        raise AssertionError(f"conn {seed}: echoed {total} of {size} bytes, "
                             f"sha256 {'equal' if got.digest() == sent.digest() else 'differs'}")
    return total


async def run_tcp(a):
    start = time.monotonic()
    tasks = [one_tcp(a.host, a.port, a.size, seed) for seed in range(a.conns)]
    totals = await asyncio.wait_for(asyncio.gather(*tasks), a.timeout)
    secs = time.monotonic() - start
    mb = 2 * sum(totals) / 1e6
    print(f"tcp ok: {a.conns} connections x {a.size} bytes each way, "
          f"{secs:.2f} s, {mb / secs:.1f} MB/s both ways")


def run_abort(a):
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((a.host, a.port))
    s.sendall(b"x" * 10000)
    s.recv(100)
    # SO_LINGER 0: close sends a RST.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((a.host, a.port))
    s.sendall(b"after abort")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        data += d
    if data != b"after abort":
        raise AssertionError(f"echo after abort: {data!r}")
    print("abort ok: RST sent, next connection echoed")


def run_udp(a):
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((a.host, a.port))
    rng = random.Random(7)
    for i in range(a.count):
        msg = struct.pack("!I", i) + rng.randbytes(a.size - 4)
        back = None
        for attempt in range(3):
            s.send(msg)
            try:
                # A late or duplicated echo of an earlier datagram is
                # normal UDP: skip it; anything else must be the echo.
                while True:
                    back = s.recv(65536)
                    if struct.unpack("!I", back[:4])[0] < i:
                        continue
                    break
                break
            except socket.timeout:
                continue
        if back is None or struct.unpack("!I", back[:4])[0] != i:
            raise AssertionError(f"datagram {i}: no echo")
        if back != msg:
            raise AssertionError(f"datagram {i}: echo differs")
    print(f"udp ok: {a.count} datagrams of {a.size} bytes echoed intact")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["tcp", "abort", "udp"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    try:
        if a.mode == "tcp":
            asyncio.run(run_tcp(a))
        elif a.mode == "abort":
            run_abort(a)
        else:
            run_udp(a)
    except (AssertionError, OSError, asyncio.TimeoutError) as e:
        print(f"{a.mode} FAILED: {type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
