"""A small multi-process test runner (pytest is not installed here): runs every
test_* function of the test modules given, each module in a worker process it
starts, the workers in parallel; exits 1 when a test failed."""
import importlib.util
import os
import subprocess
import sys


def run_module(path):
    spec = importlib.util.spec_from_file_location("tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    failed = 0
    for name in sorted(n for n in dir(mod) if n.startswith("test_")):
        try:
            getattr(mod, name)()
            print(f"ok   {path}::{name} (pid {os.getpid()})")
        except Exception as e:  # a test runner reports every failure
            failed += 1
            print(f"FAIL {path}::{name}: {e!r}")
    return failed


def main(args):
    if args and args[0] == "--worker":
        failed = run_module(args[1])
        sys.stdout.flush()
        # As multiprocessing's workers do: no interpreter teardown, so what a
        # test left open is still open when the worker exits.
        os._exit(1 if failed else 0)
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", p]) for p in args]
    return 1 if any(w.wait() for w in workers) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
