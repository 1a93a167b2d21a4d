"""churn.py: the Python fd workload leaktrace's benchmark times, with the
same output as churn.c: the loop's duration in nanoseconds, 0 held fds and
the rounds done.

    python3 churn.py -m open -n N [-t THREADS] -o OUT

With -t, THREADS idle threads wait for the loop's end: a pool's threads,
ahead of the main thread in the interpreter's list of threads.
"""
import argparse
import threading
import time


def churn(n):
    # What Python code does: a file object opened and closed, with the
    # interpreter's frames on the stack at every open.
    for _ in range(n):
        open("/dev/null", "rb", buffering=0).close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", choices=["open"], default="open")
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("-t", type=int, default=0)
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    done = threading.Event()
    idle = [threading.Thread(target=done.wait) for _ in range(a.t)]
    for t in idle:
        t.start()
    start = time.monotonic_ns()
    churn(a.n)
    took = time.monotonic_ns() - start
    done.set()
    for t in idle:
        t.join()
    with open(a.o, "w") as f:
        f.write(f"{took} 0 {a.n}\n")


main()
