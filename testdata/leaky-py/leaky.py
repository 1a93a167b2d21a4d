"""A Python program with known leaks, for leaktrace's integration tests.

Each leaking call carries a "# leak: FUNCTION" comment: the tests expect the
leak to be reported at that function and line. The leaked objects stay
referenced from `kept`, as in a cache that is never emptied, so CPython
closes them only while it shuts down.
"""
import asyncio
import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile

import truth

kept = []
scratch = tempfile.mkdtemp(prefix="leaky-py-")


def open_settings():
    f = open("/etc/hostname")  # leak: open_settings
    kept.append(f)
    truth.leak(f.fileno(), "open_settings")


def connect_backend():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # leak: connect_backend
    kept.append(s)
    truth.leak(s.fileno(), "connect_backend")


def open_database():
    db = sqlite3.connect(os.path.join(scratch, "app.db"))  # leak: open_database
    kept.append(db)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd).endswith("app.db"):
                truth.leak(int(fd), "open_database")
        except OSError:
            pass


def run_helper():
    p = subprocess.Popen(["true"], stdout=subprocess.PIPE)  # leak: run_helper
    p.wait()  # reaped, but its stdout pipe is never closed
    kept.append(p)
    truth.leak(p.stdout.fileno(), "run_helper")


def make_scratch_file():
    t = tempfile.TemporaryFile(dir=scratch)  # leak: make_scratch_file
    kept.append(t)
    truth.leak(t.fileno(), "make_scratch_file")


async def load_cache():
    await asyncio.sleep(0)
    f = open("/etc/hosts")  # leak: load_cache
    kept.append(f)
    truth.leak(f.fileno(), "load_cache")


async def serve():
    await load_cache()


def balanced():
    with open("/etc/hostname") as f:
        f.read()
    s = socket.socket()
    s.close()
    db = sqlite3.connect(os.path.join(scratch, "ok.db"))
    db.close()
    subprocess.run(["true"], stdout=subprocess.PIPE, check=True)
    with tempfile.TemporaryFile(dir=scratch) as t:
        t.write(b"x")
    asyncio.run(asyncio.sleep(0))
    # Closed by the program's own atexit handler, before the interpreter
    # finalizes: a release, not a leak.
    log = open("/etc/hostname")
    atexit.register(log.close)


def main():
    # atexit runs handlers last registered first: the truth is taken after
    # the program's own handlers, just before the interpreter finalizes.
    atexit.register(shutil.rmtree, scratch, True)
    atexit.register(truth.write)
    if sys.argv[1:] == ["balanced"]:
        balanced()
    else:
        open_settings()
        connect_backend()
        open_database()
        run_helper()
        make_scratch_file()
        asyncio.run(serve())


main()
