"""A signal delivered to another thread than the main one only sets a flag: the main thread
runs its handler when it next runs Python code. A main thread waiting for a payload's write (the
end of a run, a daemon's stop) or for room in the memory budget must still run it soon, not
when the write ends. Real processes; the signal is sent to a chosen thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import SUBPROCESS_TIMEOUT

SCRIPT = textwrap.dedent(
    """
    import signal, threading, time
    from pyplantd.store.warm import WarmTier
    from pyplantd.store.writer import PendingWrite

    heard = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: heard.append(time.monotonic()))
    pending = PendingWrite("big", "payloads/big.h5", 1 << 20)
    warm = WarmTier(budget=100)
    warm.put("payloads/big.h5", b"x" * 80, 80, durable=False)

    def elsewhere(finish):
        time.sleep(0.2)
        asked = time.monotonic()
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)  # to this thread, not main
        time.sleep(2.0)  # the write goes on meanwhile
        print(f"{WHAT}: {'heard' if heard and heard[0] - asked < 1.0 else 'not heard'}", flush=True)
        finish()

    WHAT = "{what}"
    if WHAT == "write":
        threading.Thread(target=elsewhere, args=(lambda: pending._finish(None, None),)).start()
        pending.wait()
    else:
        done = lambda: warm.mark_durable("payloads/big.h5")  # noqa: E731
        threading.Thread(target=elsewhere, args=(done,)).start()
        warm.wait_for_room(50)
    """
)


def run(what: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("{what}", what)],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_signal_heard_by_another_thread_is_handled_while_a_write_is_awaited() -> None:
    assert run("write") == "write: heard"


def test_a_signal_heard_by_another_thread_is_handled_while_room_is_awaited() -> None:
    assert run("room") == "room: heard"
