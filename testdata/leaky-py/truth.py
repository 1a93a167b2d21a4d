"""Ground truth for leaktrace's integration tests: which function opened each
fd a script leaks on purpose, and the kernel's own list of the script's open
fds (/proc/self/fd) just before it ends, written to $LEAKTRACE_TRUTH."""
import os

_leaks = []


def leak(fd, function):
    _leaks.append((fd, function))


def write():
    path = os.environ.get("LEAKTRACE_TRUTH")
    if not path:
        return
    # listdir's own directory fd is closed once it returns: fstat drops it.
    open_fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        open_fds.append(int(name))
    lines = ["leak %d %s\n" % (fd, fn) for fd, fn in _leaks]
    lines += ["open %d\n" % fd for fd in sorted(open_fds)]
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(out, "".join(lines).encode())
    finally:
        os.close(out)
