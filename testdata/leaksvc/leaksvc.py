"""A service that leaks, for the agent's dashboard test: every tick it opens
a file it never closes (load_parquet) and keeps a buffer it never frees
(cache_rows), for SECONDS seconds or until it runs out of fds, then exits.

usage: leaksvc.py SECONDS
"""
import sys
import time

held_files = []
held_rows = []


def load_parquet(path):
    return open(path, "rb")  # leak: load_parquet


def cache_rows(n):
    held_rows.append(bytearray(n))  # grows: cache_rows


def main():
    end = time.monotonic() + float(sys.argv[1])
    print("ready", flush=True)
    while time.monotonic() < end:
        try:
            held_files.append(load_parquet("/dev/null"))
        except OSError:
            pass  # EMFILE: keep serving, as services do
        cache_rows(256 << 10)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
