"""Run a command as a child subreaper: ``python ecolab_reaper.py COMMAND [ARGS...]``.

This machine's init does not reap orphans. RabbitMQ's Erlang VM leaves one behind at every shutdown (a worker of
its ``inet_gethost`` port program outlives its parent), which would stay a zombie for good. Here orphans of the
command's process tree are re-parented to this process (``PR_SET_CHILD_SUBREAPER``) and reaped. SIGTERM and
SIGINT are passed on to the command; once it has exited, whatever of its tree is left gets SIGTERM, then SIGKILL,
and this process exits with the command's status.
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children():
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            return [int(pid) for pid in f.read().split()]
    except OSError:
        return []


def _reap_all(pid, status):
    """Reap children until none is left; return the exit status of ``pid`` (or ``status`` if already reaped)."""
    while True:
        try:
            done, wstatus = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if done == 0:
            return status
        if done == pid:
            status = os.waitstatus_to_exitcode(wstatus)


def main(argv):
    if not argv:
        sys.exit("usage: ecolab_reaper.py COMMAND [ARGS...]")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"ecolab_reaper: cannot run {argv[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = None
    while status is None:
        try:
            done, wstatus = os.wait()
        except ChildProcessError:
            status = 1
            break
        if done == pid:
            status = os.waitstatus_to_exitcode(wstatus)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for child in _children():
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while _children() and time.monotonic() < deadline:
            _reap_all(pid, status)
            time.sleep(0.05)
    _reap_all(pid, status)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
