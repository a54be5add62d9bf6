#!/usr/bin/env python3
"""Extended CONNECT (RFC 8441) over HTTP/2 for test/integration/proxyd_h2.sh,
both ends written with python3-h2.

  h2connect.py server ADDR PORT CERT KEY ECP
      an h2 origin over TLS: SETTINGS_ENABLE_CONNECT_PROTOCOL = ECP (0 or
      1); a CONNECT with :protocol websocket gets 200, then every byte of
      the tunnel back; anything else 404.
  h2connect.py client ADDR PORT CAFILE NAME
      connects (SNI and :authority NAME), prints "ecp N" (the server's
      ENABLE_CONNECT_PROTOCOL), and when N is 1 opens a websocket tunnel
      on /chat, sends "hello" and prints "status S echo DATA".
"""
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings

ECP = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


def serve_one(sock, ecp):
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
    conn.initiate_connection()
    conn.update_settings({ECP: ecp})
    sock.sendall(conn.data_to_send())
    tunnels = set()
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                hd = {k.decode() if isinstance(k, bytes) else k:
                      v.decode() if isinstance(v, bytes) else v
                      for k, v in ev.headers}
                if hd.get(":method") == "CONNECT" and \
                        hd.get(":protocol") == "websocket":
                    tunnels.add(ev.stream_id)
                    conn.send_headers(ev.stream_id, [(":status", "200")])
                else:
                    conn.send_headers(ev.stream_id, [(":status", "404")],
                                      end_stream=True)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length,
                                               ev.stream_id)
                if ev.stream_id in tunnels and ev.data:
                    conn.send_data(ev.stream_id, ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in tunnels:
                    conn.end_stream(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def server(addr, port, cert, key, ecp):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    lsock = socket.create_server((addr, port))
    print("serving", flush=True)
    while True:
        raw, _ = lsock.accept()

        def run(raw=raw):
            try:
                with ctx.wrap_socket(raw, server_side=True) as s:
                    serve_one(s, ecp)
            except (OSError, h2.exceptions.ProtocolError):
                pass
        threading.Thread(target=run, daemon=True).start()


def client(addr, port, cafile, name):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((addr, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=name)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    # Until the server's SETTINGS came.
    while True:
        data = s.recv(65536)
        if not data:
            print("closed before SETTINGS")
            return
        evs = conn.receive_data(data)
        s.sendall(conn.data_to_send())
        if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in evs):
            break
    ecp = conn.remote_settings.get(ECP, 0) or 0
    print("ecp", ecp, flush=True)
    if ecp != 1:
        return
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                            (":scheme", "https"), (":path", "/chat"),
                            (":authority", "%s:%d" % (name, port))])
    conn.send_data(sid, b"hello")
    s.sendall(conn.data_to_send())
    status, echo = None, b""
    while len(echo) < 5:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status", b"?").decode()
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length,
                                               ev.stream_id)
                echo += ev.data
            elif isinstance(ev, h2.events.StreamReset):
                print("reset", ev.error_code)
                return
        s.sendall(conn.data_to_send())
    conn.end_stream(sid)
    conn.close_connection()
    s.sendall(conn.data_to_send())
    print("status %s echo %s" % (status, echo.decode(errors="replace")))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5],
               int(sys.argv[6]))
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
