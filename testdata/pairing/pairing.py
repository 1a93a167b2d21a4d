"""Short-lived handles in a multi-threaded Python program, for in-kernel
pairing: threads read files and make sockets that they close at once, and
each keeps a few files open in a cache that is never emptied. Those, and
only they, must be reported, at the marked line; most of the rest should
never leave the kernel. Usage: pairing.py [ROUNDS] (default 1000 per thread).
"""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "leaky-py"))
import truth  # noqa: E402

THREADS = 4
LEAKS = 3
cache = []
lock = threading.Lock()


def read_config():
    with open("/etc/hostname") as f:
        return f.read()


def probe_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.close()


def cache_file():
    f = open("/etc/hostname")  # leak: cache_file
    with lock:
        cache.append(f)
        truth.leak(f.fileno(), "cache_file")


def worker(rounds):
    for _ in range(rounds):
        read_config()
        probe_socket()
    for _ in range(LEAKS):
        cache_file()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    threads = [threading.Thread(target=worker, args=(rounds,)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    truth.write()
    os._exit(0)  # exit holding the cache: no interpreter teardown


main()
