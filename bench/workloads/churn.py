"""churn.py: the Python fd workload leaktrace's benchmark times, with the
same output as churn.c: the loop's duration in nanoseconds, 0 held fds and
the rounds done.

    python3 churn.py -m open -n N -o OUT
"""
import argparse
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
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    start = time.monotonic_ns()
    churn(a.n)
    took = time.monotonic_ns() - start
    with open(a.o, "w") as f:
        f.write(f"{took} 0 {a.n}\n")


main()
