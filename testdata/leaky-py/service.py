"""A service-like Python program that leaks one of each handle people meet:
a file, a socket, a Popen pipe and its child, a sqlite3 connection, a
ThreadPoolExecutor thread and a NamedTemporaryFile. Each leaking call carries
a "# leak: FUNCTION" comment; the tests expect the leak at that line.

Modes (argv[1]):
  exit      ends with os._exit(0): everything is still held at exit.
  finalize  ends normally: what is still referenced is closed by the
            interpreter's shutdown (a leak), while what exit-time code opens
            and closes during that shutdown balances (no leak).
"""
import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import truth

kept = []
scratch = tempfile.mkdtemp(prefix="leaky-service-")
never = threading.Event()


def read_config():
    f = open("/etc/hostname")  # leak: read_config
    kept.append(f)
    truth.leak(f.fileno(), "read_config")


def connect_upstream():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # leak: connect_upstream
    kept.append(s)
    truth.leak(s.fileno(), "connect_upstream")


def open_store():
    db = sqlite3.connect(os.path.join(scratch, "app.db"))  # leak: open_store
    db.execute("create table if not exists t (x)")
    kept.append(db)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd).endswith("app.db"):
                truth.leak(int(fd), "open_store")
        except OSError:
            pass


def spawn_helper():
    p = subprocess.Popen(["true"], stdout=subprocess.PIPE)  # leak: spawn_helper
    kept.append(p)  # never waited for: a zombie child, and its pipe
    truth.leak(p.stdout.fileno(), "spawn_helper")


def write_spool():
    t = tempfile.NamedTemporaryFile(dir=scratch, delete=False)  # leak: write_spool
    kept.append(t)
    truth.leak(t.fileno(), "write_spool")


def start_worker():
    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(never.wait)  # leak: start_worker
    kept.append(pool)


class ExitTimeProbe:
    """Exit-time code: its handle is opened and closed while the interpreter
    finalizes, which is no leak."""

    def __del__(self, _open=open):
        with _open("/etc/hostname") as f:
            f.read()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "exit"
    read_config()
    connect_upstream()
    open_store()
    spawn_helper()
    write_spool()
    if mode == "exit":
        start_worker()
        truth.write()
        shutil.rmtree(scratch, True)  # the open files stay open
        os._exit(0)
    atexit.register(shutil.rmtree, scratch, True)
    # Module teardown runs the probe's __del__ once finalization began.
    global probe
    probe = ExitTimeProbe()
    truth.write()


main()
