"""Tests with known leaks: each writes what it leaked, and from which pid, to
$LEAKY_PY_TRUTH so that the integration test can check the attribution."""
import os
import socket

_keep = []


def _truth(kind, target):
    path = os.environ.get("LEAKY_PY_TRUTH")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {kind} {target}\n")


def test_leaks_file():
    f = open("/etc/hostname")
    _keep.append(f)
    _truth("file", "/etc/hostname")


def test_leaks_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _keep.append(s)
    _truth("socket", "tcp")


def test_clean():
    with open("/etc/hostname") as f:
        f.read()
