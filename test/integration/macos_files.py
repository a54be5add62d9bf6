#!/usr/bin/env python3
"""Checks macOS's packaging files on Linux, for test/integration/macos_packaging.sh.

  plist  FILE...              parses with plistlib (what plutil -lint checks:
                              well-formed XML property lists)
  launchd BIN_DIR FILE...     a launchd job: Label is the file's name,
                              ProgramArguments an absolute program and
                              strings, every --option of it one the daemon's
                              --help (from BIN_DIR) lists
  sbpl   SANDBOX_C FILE...    a Seatbelt profile: balanced s-expressions,
                              (version 1) first, (deny default), only known
                              top-level forms, operations and filters, and
                              every bare name either defined in the file or
                              one sandbox_posix.c defines before it

Prints "ok - ..." / "not ok - ..." lines; exits 1 on any failure.
"""
import os
import plistlib
import re
import subprocess
import sys

failures = 0


def report(good, what):
    global failures
    print(("ok - " if good else "not ok - ") + what)
    if not good:
        failures += 1


def check_plists(files):
    for f in files:
        try:
            with open(f, "rb") as fh:
                plistlib.load(fh)
            report(True, f"{f} is a well-formed property list")
        except Exception as e:  # noqa: BLE001 - any parse error is the finding
            report(False, f"{f}: {e}")


def check_launchd(bindir, files):
    for f in files:
        with open(f, "rb") as fh:
            p = plistlib.load(fh)
        stem = os.path.basename(f)[: -len(".plist")]
        report(p.get("Label") == stem, f"{f}: Label {p.get('Label')!r} is the file's name")
        args = p.get("ProgramArguments")
        good = isinstance(args, list) and args and all(isinstance(a, str) for a in args) \
            and args[0].startswith("/")
        report(bool(good), f"{f}: ProgramArguments is an absolute program and strings")
        if not good:
            continue
        prog = os.path.join(bindir, os.path.basename(args[0]))
        try:
            helptext = subprocess.run([prog, "--help"], capture_output=True, text=True,
                                      timeout=10).stdout + \
                subprocess.run([prog, "--help"], capture_output=True, text=True,
                               timeout=10).stderr
        except OSError as e:
            report(False, f"{f}: cannot run {prog} --help: {e}")
            continue
        opts = [a.split("=")[0] for a in args[1:] if a.startswith("--")]
        missing = [o for o in opts if not re.search(re.escape(o) + r"\b", helptext)]
        report(not missing, f"{f}: {os.path.basename(prog)} knows {' '.join(opts) or 'no'} "
               f"options{' (unknown: ' + ' '.join(missing) + ')' if missing else ''}")
        for k in ("RunAtLoad",):
            if k in p:
                report(isinstance(p[k], bool), f"{f}: {k} is a boolean")


# --- SBPL -----------------------------------------------------------------------
TOP = {"version", "deny", "allow", "define", "import"}
OPERATIONS = {
    "default", "file*", "file-read*", "file-read-data", "file-read-metadata",
    "file-read-xattr", "file-write*", "file-write-data", "file-write-create",
    "file-write-unlink", "file-write-mode", "file-write-flags", "file-write-xattr",
    "file-write-times", "file-ioctl", "file-link", "file-revoke", "network*",
    "network-outbound", "network-inbound", "network-bind", "system-socket",
    "sysctl*", "sysctl-read", "sysctl-write", "signal", "process*", "process-fork",
    "process-exec", "process-exec*", "process-info*", "process-info-pidinfo",
    "mach-lookup", "mach-register", "ipc-posix-shm*", "ipc-posix-sem", "iokit-open",
    "user-preference-read", "system-info",
}
FILTERS = {
    "literal", "subpath", "regex", "prefix", "local", "remote", "target",
    "require-any", "require-all", "require-not", "extension", "vnode-type",
    "socket-domain", "global-name", "param",
    # a modifier, not a filter: (allow process-exec (literal P) (with no-sandbox))
    "with",
}
FILTER_WORDS = {"ip", "tcp", "udp", "unix-socket", "self", "others", "pgrp", "children",
                "parent", "no-sandbox"}


def tokens(text):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "()":
            yield c
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                j += 1
            if j >= n:
                raise ValueError("a string is not closed")
            yield ("str", text[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n();\"":
                j += 1
            yield ("sym", text[i:j])
            i = j


def parse(text):
    stack, top = [[]], None
    for t in tokens(text):
        if t == "(":
            stack.append([])
        elif t == ")":
            if len(stack) == 1:
                raise ValueError("a ')' too many")
            top = stack.pop()
            stack[-1].append(top)
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise ValueError(f"{len(stack) - 1} '(' not closed")
    return stack[0]


def sym(x):
    return x[1] if isinstance(x, tuple) and x[0] == "sym" else None


def check_filter(x, names, where):
    errs = []
    if isinstance(x, list):
        head = sym(x[0]) if x else None
        if head not in FILTERS:
            errs.append(f"{where}: unknown filter {head!r}")
        for a in x[1:]:
            errs += check_filter(a, names, where)
    elif sym(x) is not None:
        s = sym(x)
        if s not in names and s not in FILTER_WORDS and s not in OPERATIONS:
            errs.append(f"{where}: {s!r} is not defined")
    return errs


def check_sbpl(sandbox_c, files):
    with open(sandbox_c) as fh:
        prelude = set(re.findall(r'define\(&prof, &len, "([a-z-]+)"', fh.read()))
    report(len(prelude) >= 3, f"{sandbox_c} defines {' '.join(sorted(prelude))} before a profile")
    for f in files:
        with open(f) as fh:
            text = fh.read()
        try:
            forms = parse(text)
        except ValueError as e:
            report(False, f"{f}: {e}")
            continue
        errs = []
        if not forms or forms[0] != [("sym", "version"), ("sym", "1")]:
            errs.append("(version 1) is not the first form")
        if [("sym", "deny"), ("sym", "default")] not in forms:
            errs.append("no (deny default)")
        names = set(prelude)
        for form in forms:
            if not isinstance(form, list) or not form or sym(form[0]) not in TOP:
                errs.append(f"unknown top-level form {form!r:.60}")
                continue
            head = sym(form[0])
            if head == "define" and len(form) == 3 and sym(form[1]):
                names.add(sym(form[1]))
            if head in ("allow", "deny"):
                ops = [sym(a) for a in form[1:] if sym(a) is not None]
                if not ops:
                    errs.append(f"({head}) without an operation")
                errs += [f"unknown operation {o!r}" for o in ops if o not in OPERATIONS]
                for a in form[1:]:
                    if isinstance(a, list):
                        errs += check_filter(a, names, f"({head} {' '.join(ops)})")
        report(not errs, f"{f}: {len(forms)} forms, Seatbelt syntax as far as Linux can "
               f"tell" + ("" if not errs else ": " + "; ".join(errs)))


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "plist":
        check_plists(argv[2:])
    elif cmd == "launchd":
        check_launchd(argv[2], argv[3:])
    elif cmd == "sbpl":
        check_sbpl(argv[2], argv[3:])
    else:
        print(__doc__)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
