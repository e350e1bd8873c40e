"""A slow disk for tests of stopping: pipeline text that holds the write of ingredient 'data'
open until the test creates `gate-open` (and says it started by creating `writing`), so a signal
always arrives while the write is pending, on an idle machine and on a loaded one alike.

The write-behind path is the one held: the value is frozen at `send` and the background writer
waits, as it would on a disk that takes its time.
"""

SLOW_DISK = """
import os as _os, time as _time
from pyplantd.store.payloads import PayloadFiles as _PayloadFiles


def _gated(write_to):
    def write_to_when_the_gate_opens(self, final, name, *args, **kwargs):
        if name == 'data':
            open('writing', 'w').close()
            deadline = _time.monotonic() + 120
            while not _os.path.exists('gate-open') and _time.monotonic() < deadline:
                _time.sleep(0.005)
        return write_to(self, final, name, *args, **kwargs)

    write_to_when_the_gate_opens.gated = True
    return write_to_when_the_gate_opens


if not getattr(_PayloadFiles.write_to, 'gated', False):  # a reload runs this again
    _PayloadFiles.write_to = _gated(_PayloadFiles.write_to)
"""
