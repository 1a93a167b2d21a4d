"""threads.py: a thread pool's workers open files among idle threads.

Each wave starts 8 idle threads and 8 workers; the workers open and close
/dev/null, then each keeps 2 files open (leak_in_worker), and the main
thread, behind every one of them in the interpreter's list of threads,
keeps 1 (leak_in_main). The second wave's threads may take the first's
freed thread states: a state the kernel remembers for a thread must still
be that thread's. leaktrace's test checks that every leak names its
function, and truth.py gives the kernel's list of open fds at the end.
"""
import threading

import truth

kept = []
lock = threading.Lock()
cond = threading.Condition(lock)


def leak_in_worker():
    f = open("/dev/null", "rb")  # leak: leak_in_worker
    truth.leak(f.fileno(), "leak_in_worker")
    with cond:
        kept.append(f)
        cond.notify_all()


def worker(go):
    for _ in range(200):
        open("/dev/null", "rb", buffering=0).close()
    leak_in_worker()
    leak_in_worker()
    go.wait()


def leak_in_main():
    f = open("/dev/null", "rb")  # leak: leak_in_main
    truth.leak(f.fileno(), "leak_in_main")
    kept.append(f)


def wave():
    go = threading.Event()
    idle = [threading.Thread(target=go.wait) for _ in range(8)]
    workers = [threading.Thread(target=worker, args=(go,)) for _ in range(8)]
    with cond:
        want = len(kept) + 16
    for t in idle + workers:
        t.start()
    for _ in range(200):
        open("/dev/null", "rb", buffering=0).close()
    with cond:
        cond.wait_for(lambda: len(kept) >= want)
    leak_in_main()
    go.set()
    for t in idle + workers:
        t.join()


for _ in range(2):
    wave()
truth.write()
