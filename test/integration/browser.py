#!/usr/bin/env python3
"""Drive headless Chromium through a list of steps, for test/integration/webd.sh.

    browser.py [--chromium PATH] [--profile DIR] STEP...

Steps, in order:
    goto:URL        open URL in the page
    size:WxH        the window's size in CSS pixels
    wait:JS         until the JavaScript expression is true (15 s, else fail)
    eval:JS         run it (its value printed)
    sh:CMD          run a shell command (e.g. make a new flow while the page
                    is open), fail if it fails
    dom:FILE        the page's DOM (document.documentElement.outerHTML)
    shot:FILE       a PNG screenshot of the window

Why not `chromium --dump-dom --virtual-time-budget`: virtual time stands
still while a request is pending, and the viewer keeps one open for ever
(its event stream).  This speaks the DevTools protocol over the pipe
Chromium opens with --remote-debugging-pipe (fds 3 and 4, messages ended
by NUL): no library, no port.

Exit 0 when every step worked, 1 (with the step and why) otherwise.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

WAIT_S = 15.0


class Browser:
    def __init__(self, chromium, profile):
        r_to_chrome, self.w = os.pipe()
        self.r, w_from_chrome = os.pipe()
        os.set_inheritable(r_to_chrome, True)
        os.set_inheritable(w_from_chrome, True)

        def fds():
            os.dup2(r_to_chrome, 3)
            os.dup2(w_from_chrome, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", "--user-data-dir=" + profile,
             "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(r_to_chrome)
        os.close(w_from_chrome)
        self.buf = b""
        self.next_id = 0
        self.session = None
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target["targetId"],
                                  "flatten": True}, session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _read_msg(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise RuntimeError("no answer from Chromium")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_msg(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr,
                                           "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError("JS: " + json.dumps(r["exceptionDetails"])[:400])
        return r.get("result", {}).get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    args = sys.argv[1:]
    chromium = shutil.which("chromium") or "chromium"
    profile = None
    while args and args[0].startswith("--"):
        if args[0] == "--chromium":
            chromium = args[1]
            args = args[2:]
        elif args[0] == "--profile":
            profile = args[1]
            args = args[2:]
        else:
            sys.exit("browser.py: unknown option " + args[0])
    tmp = None
    if profile is None:
        tmp = tempfile.mkdtemp(prefix="lc-chromium.")
        profile = tmp
    b = Browser(chromium, profile)
    rc = 0
    try:
        for step in args:
            kind, _, arg = step.partition(":")
            if kind == "goto":
                b.call("Page.navigate", {"url": arg})
            elif kind == "size":
                w, h = (int(x) for x in arg.split("x"))
                b.call("Emulation.setDeviceMetricsOverride",
                       {"width": w, "height": h, "deviceScaleFactor": 1,
                        "mobile": False})
            elif kind == "wait":
                deadline = time.monotonic() + WAIT_S
                while True:
                    try:
                        if b.eval(arg):
                            break
                    except RuntimeError:
                        pass    # the page may be between documents
                    if time.monotonic() > deadline:
                        print("browser.py: timed out waiting for: " + arg)
                        rc = 1
                        break
                    time.sleep(0.1)
                if rc:
                    break
            elif kind == "eval":
                print(json.dumps(b.eval(arg)))
            elif kind == "sh":
                if subprocess.call(arg, shell=True) != 0:
                    print("browser.py: command failed: " + arg)
                    rc = 1
                    break
            elif kind == "dom":
                with open(arg, "w", encoding="utf-8") as f:
                    f.write(b.eval("document.documentElement.outerHTML"))
            elif kind == "shot":
                r = b.call("Page.captureScreenshot", {"format": "png"})
                with open(arg, "wb") as f:
                    f.write(base64.b64decode(r["data"]))
            else:
                print("browser.py: unknown step " + step)
                rc = 1
                break
    except (RuntimeError, OSError) as e:
        print("browser.py: %s" % e)
        rc = 1
    finally:
        b.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
