"""fdgen.py: a random sequence of the fd work CPython programs do (open(),
socket, sqlite3, subprocess pipes, tempfile, os.pipe/dup), stopping at
checkpoints so a test can compare leaktrace's live table with /proc/PID/fd.

    python3 fdgen.py SEED OPS CHECK_EVERY
"""
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading

held = []


def checkpoint(n):
    print(f"checkpoint {os.getpid()} {n}", flush=True)
    # Directed at this thread: it stops before running on.
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


def op(rng):
    k = rng.randrange(12)
    if k == 0:
        held.append(open("/etc/hostname"))
    elif k == 1:
        held.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    elif k == 2:
        held.append(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    elif k == 3:
        held.append(sqlite3.connect(":memory:" if rng.random() < 0.5 else tempfile.mktemp(dir="/tmp")))
    elif k == 4:
        p = subprocess.Popen(["/bin/true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.wait()
        held.append(p.stdout)
        p.stderr.close()
    elif k == 5:
        held.append(tempfile.TemporaryFile())
    elif k == 6:
        r, w = os.pipe()
        held.append(r)
        os.close(w)
    elif k == 7:
        fd = os.open("/dev/null", os.O_RDONLY)
        held.append(os.dup(fd))
        os.close(fd)
    elif k == 8:
        # a thread that opens and closes on its own
        t = threading.Thread(target=lambda: open("/dev/zero").close())
        t.start()
        t.join()
    elif held:
        h = held.pop(rng.randrange(len(held)))
        if isinstance(h, int):
            os.close(h)
        else:
            h.close()


def main():
    seed, ops, every = (int(a) for a in sys.argv[1:4])
    rng = random.Random(seed)
    n = 0
    for i in range(1, ops + 1):
        op(rng)
        if i % every == 0:
            n += 1
            checkpoint(n)
    n += 1
    checkpoint(n)
    print(f"exit {os.getpid()}", flush=True)
    os._exit(0)  # exit holding everything: no interpreter teardown


main()
