"""The file watcher against a real watchdog observer and real files: save styles, debounce,
content hashes, watch-set changes, errors, and the polling fallback."""

from __future__ import annotations

import errno
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers import Observer

from pyplantd.daemon import inotify
from pyplantd.daemon.inotify import InotifyObserver
from pyplantd.daemon.watcher import Watcher

DEADLINE = 5.0


class Recorder:
    """Collects on_change calls and notices; waits for them with a deadline."""

    def __init__(self) -> None:
        self.calls: list[set[Path]] = []
        self.notices: list[str] = []
        self.failures: list[Exception] = []  # raised by the next calls, one each

    def __call__(self, paths: set[Path]) -> None:
        self.calls.append(set(paths))
        if self.failures:
            raise self.failures.pop()

    def wait_calls(self, count: int) -> list[set[Path]]:
        self._wait(lambda: len(self.calls) >= count, f"{count} on_change calls")
        return self.calls

    def wait_notice(self, part: str) -> str:
        self._wait(lambda: any(part in n for n in self.notices), f"a notice with {part!r}")
        return next(n for n in self.notices if part in n)

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not done():
            assert time.monotonic() < deadline, f"no {what}; calls={self.calls}"
            time.sleep(0.002)


# native: pyplantd's own inotify reader on Linux; watchdog: watchdog's observer, which other
# systems use; polling: the fallback.
@pytest.fixture(params=["native", "watchdog", "polling"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def mode_options(mode: str) -> dict[str, object]:
    if mode == "watchdog":
        return {"observer_factory": Observer}
    return {"force_polling": mode == "polling"}


@pytest.fixture
def make_watcher(mode: str) -> Iterator[Callable[..., tuple[Watcher, Recorder]]]:
    """Start watchers in the test's mode (polling every 50 ms); stops them all afterwards."""
    started: list[Watcher] = []

    def make(paths: list[Path], **options: object) -> tuple[Watcher, Recorder]:
        recorder = Recorder()
        options = {**mode_options(mode), "poll_interval": 0.05, **options}
        watcher = Watcher(recorder, on_notice=recorder.notices.append, **options)  # type: ignore[arg-type]
        started.append(watcher)
        watcher.watch(paths)
        watcher.start()
        assert watcher.mode == ("polling" if mode == "polling" else "native")
        return watcher, recorder

    yield make
    for watcher in started:
        watcher.stop()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A watched file and a sentinel (another watched file in the same folder)."""
    target, sentinel = tmp_path / "pipeline.py", tmp_path / "sentinel.py"
    target.write_text("x = 0\n")
    sentinel.write_text("s = 0\n")
    return target, sentinel


def settle(recorder: Recorder, sentinel: Path, expected: list[set[Path]]) -> None:
    """Wait for the expected calls, then save the sentinel and wait for its call: a late or extra
    call for anything saved before would come first or share the sentinel's burst."""
    recorder.wait_calls(len(expected))
    sentinel.write_text(f"s = {time.monotonic_ns()}\n")
    assert recorder.wait_calls(len(expected) + 1) == [*expected, {sentinel}]


# -- how editors save ------------------------------------------------------------------------
def save_in_place(path: Path, text: str) -> None:
    path.write_text(text)


def save_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temp.write_text(text)
    os.replace(temp, path)


def save_atomic_from_elsewhere(path: Path, text: str) -> None:
    # The temp file lives in a folder that is not watched: only a created/moved-in event.
    temp = path.parent / "elsewhere" / path.name
    temp.parent.mkdir(exist_ok=True)
    temp.write_text(text)
    os.replace(temp, path)


def save_vim_style(path: Path, text: str) -> None:
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    path.write_text(text)
    backup.unlink()


def save_truncate_then_write(path: Path, text: str) -> None:
    with open(path, "w") as handle:  # an event fires while the file is empty
        handle.flush()
        os.fsync(handle.fileno())
        time.sleep(0.005)
        handle.write(text)


SAVES = [save_in_place, save_atomic, save_atomic_from_elsewhere, save_vim_style]


@pytest.mark.parametrize("save", [*SAVES, save_truncate_then_write], ids=lambda f: f.__name__)
def test_each_save_is_reported_exactly_once(make_watcher, files, save) -> None:
    target, sentinel = files
    # 100 ms: the truncate-then-write pause must fall inside the quiet window even on a slow CI.
    _, recorder = make_watcher([target, sentinel], debounce=0.1)
    for i in range(1, 6):
        save(target, f"x = {i}\n")
        recorder.wait_calls(i)
    settle(recorder, sentinel, [{target}] * 5)


@pytest.mark.parametrize("save", [*SAVES, save_truncate_then_write], ids=lambda f: f.__name__)
def test_byte_identical_save_is_no_change_but_is_noted(make_watcher, files, save) -> None:
    target, sentinel = files
    unchanged: list[set[Path]] = []
    _, recorder = make_watcher([target, sentinel], debounce=0.1, on_unchanged=unchanged.append)
    for _ in range(3):
        save(target, "x = 0\n")
    settle(recorder, sentinel, [])
    assert unchanged and all(paths == {target} for paths in unchanged), unchanged


@pytest.mark.parametrize("pause", [0.06, 0.3])
def test_slow_truncate_then_write_waits_for_the_writer_to_close(files, pause) -> None:
    # The pause between truncation and writing outlasts the 20 ms quiet window: the file is
    # still open for writing, so the watcher waits for the close before reading it.
    target, sentinel = files
    recorder, seen = Recorder(), []

    def on_change(paths: set[Path]) -> None:
        if target in paths:
            seen.append(target.read_text())  # what a reload would load at that moment
        recorder(paths)

    watcher = Watcher(on_change, debounce=0.02)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        for i in range(1, 4):
            with open(target, "w") as handle:
                handle.flush()
                time.sleep(pause)
                handle.write(f"x = {i}\n")
            assert recorder.wait_calls(i)[-1] == {target}
        settle(recorder, sentinel, [{target}] * 3)
        assert seen == [f"x = {i}\n" for i in (1, 2, 3)]  # never the empty, half-saved file
    finally:
        watcher.stop()


class LateObserver(Observer):  # type: ignore[misc, valid-type]
    """A real observer whose events reach the handler late, as on a loaded machine."""

    def dispatch_events(self, event_queue):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        super().dispatch_events(event_queue)


def test_a_scan_before_the_events_waits_for_the_writer_too(files) -> None:
    # The re-scan sees the truncated file before the OS events arrive: it must not read the
    # empty, half-saved file, but wait for the writer's close as the events would.
    target, sentinel = files
    recorder, seen = Recorder(), []

    def on_change(paths: set[Path]) -> None:
        if target in paths:
            seen.append(target.read_text())
        recorder(paths)

    watcher = Watcher(on_change, debounce=0.02, poll_interval=0.02, observer_factory=LateObserver)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        with open(target, "w") as handle:
            handle.flush()
            time.sleep(0.15)  # several scans see the empty file before any event arrives
            handle.write("x = 1\n")
        settle(recorder, sentinel, [{target}])
        assert seen == ["x = 1\n"]
    finally:
        watcher.stop()


def test_burst_of_saves_within_the_quiet_window_is_one_call_after_the_first(files, mode) -> None:
    """The first save is read at once (natively; the scan waits for quiet), the saves that
    follow it within the quiet window come in one call, with the last content."""
    target, sentinel = files
    seen: list[str] = []
    recorder = Recorder()

    def on_change(paths: set[Path]) -> None:
        seen.append(target.read_text())
        recorder(paths)

    watcher = Watcher(on_change, debounce=0.3, poll_interval=0.05, **mode_options(mode))  # type: ignore[arg-type]
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        saves = SAVES * 2
        for i, save in enumerate(saves):
            save(target, f"x = {i + 1}\n")
            time.sleep(0.01)  # saves 10 ms apart: well inside the 300 ms window
        expected = [{target}] * (1 if mode == "polling" else 2)
        settle(recorder, sentinel, expected)
        assert seen[len(expected) - 1] == f"x = {len(saves)}\n"
    finally:
        watcher.stop()


@pytest.mark.parametrize(
    "save", [save_in_place, save_atomic, save_vim_style], ids=lambda f: f.__name__
)
def test_a_save_is_read_as_soon_as_its_write_ended(files, save) -> None:
    """Closed after writing or renamed into place, with nothing else open for writing: no quiet
    window to wait for (here 3 s)."""
    target, sentinel = files
    recorder = Recorder()
    watcher = Watcher(recorder, debounce=3.0)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        for i in range(1, 4):
            began = time.monotonic()
            save(target, f"x = {i}\n")
            assert recorder.wait_calls(i)[-1] == {target}
            assert time.monotonic() - began < 1.5
            time.sleep(3.1)  # the next save is no continuation of this one
    finally:
        watcher.stop()


def test_a_save_while_another_watched_file_is_open_for_writing_waits(files) -> None:
    target, sentinel = files
    recorder = Recorder()
    watcher = Watcher(recorder, debounce=0.5)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        with open(sentinel, "w") as other:
            other.write("s = 1\n")
            other.flush()  # written, still open: perhaps a checkout half-way
            time.sleep(0.1)
            save_in_place(target, "x = 1\n")
            time.sleep(0.3)
            assert recorder.calls == []  # not at once: the quiet window applies
        calls = recorder.wait_calls(1)
        assert set().union(*calls) == {target, sentinel}
    finally:
        watcher.stop()


def test_a_file_saved_again_right_after_a_save_is_never_taken_half_written(files) -> None:
    """A second save truncates the file just after the first one closed it. The watcher never
    reads the truncated file as a save of its own; and what a reload reads after it reported
    the first save, if the second save has begun meanwhile, is known to be stale
    (`changed_since_read`: the engine then runs nothing and waits for the second save)."""
    target, sentinel = files
    recorder, taken = Recorder(), []

    def on_change(paths: set[Path]) -> None:
        if target in paths:
            loaded = target.read_text()  # what a reload would load at that moment
            if not watcher.changed_since_read():
                taken.append(loaded)  # what the engine would run
        recorder(paths)

    watcher = Watcher(on_change, debounce=0.02)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        for i in range(1, 21):
            save_in_place(target, f"x = {i}\n")
            with open(target, "w") as handle:  # at once: truncated while the first is read
                handle.flush()
                time.sleep(0.03)
                handle.write(f"x = {i}.5\n")
            recorder.wait_calls(1)
            time.sleep(0.1)
        settle(recorder, sentinel, recorder.calls[:])
        assert "" not in taken and taken[-1] == "x = 20.5\n"
    finally:
        watcher.stop()


def test_a_file_open_for_writing_is_not_read_before_its_writer_closes_it(files) -> None:
    """The events of a second save (truncate, pause, write) arrive late: the first save's
    close alone says nothing of them. What the watcher reads is what a writer finished."""
    target, sentinel = files
    recorder, taken = Recorder(), []

    def on_change(paths: set[Path]) -> None:
        if target in paths:
            loaded = target.read_text()
            if not watcher.changed_since_read():
                taken.append(loaded)
        recorder(paths)

    watcher = Watcher(on_change, debounce=0.02, observer_factory=LateObserver)
    watcher.watch([target, sentinel])
    watcher.start()
    try:
        time.sleep(0.3)  # the folder watched
        save_in_place(target, "x = 1\n")
        with open(target, "w") as handle:  # truncated at once, written only 0.6 s later
            handle.flush()
            time.sleep(0.6)
            handle.write("x = 1.5\n")
        deadline = time.monotonic() + 30
        while "x = 1.5\n" not in taken and time.monotonic() < deadline:
            time.sleep(0.02)
        assert taken and "" not in taken and taken[-1] == "x = 1.5\n", taken
    finally:
        watcher.stop()


def test_a_burst_over_several_files_reports_the_first_at_once_and_the_rest_together(
    tmp_path,
) -> None:
    files = [tmp_path / f"m{i}.py" for i in range(5)]
    for path in files:
        path.write_text("x = 0\n")
    recorder, bursts = Recorder(), []
    watcher = Watcher(recorder, debounce=0.3, on_burst=lambda: bursts.append(time.monotonic()))
    watcher.watch(files)
    watcher.start()
    try:
        time.sleep(0.1)
        for path in files:  # as a checkout writes them: one after the other
            path.unlink()
            path.write_text("x = 1\n")
        recorder.wait_calls(1)
        time.sleep(0.6)
        calls = recorder.calls
        assert set().union(*calls) == set(files) and len(calls) <= 2
        assert len(bursts) == len(calls) - 1  # the run the first call started is stale at once
    finally:
        watcher.stop()


def test_comment_only_edit_is_a_content_change(make_watcher, files) -> None:
    target, sentinel = files
    _, recorder = make_watcher([target, sentinel])
    save_atomic(target, "x = 0  # the engine decides whether this matters\n")
    settle(recorder, sentinel, [{target}])


def test_unwatched_file_in_the_same_folder_reports_nothing(make_watcher, files) -> None:
    target, sentinel = files
    other = target.with_name("notes.txt")
    _, recorder = make_watcher([target, sentinel])
    for i in range(3):
        save_in_place(other, f"note {i}\n")
        save_atomic(other, f"note {i} again\n")
    settle(recorder, sentinel, [])


def test_deleted_watched_file_is_reported_and_so_is_its_return(make_watcher, files) -> None:
    target, sentinel = files
    _, recorder = make_watcher([target, sentinel])
    target.unlink()
    assert recorder.wait_calls(1) == [{target}]
    target.write_text("x = 0\n")  # back with its old bytes: still a change from "gone"
    settle(recorder, sentinel, [{target}, {target}])


def test_file_not_existing_yet_is_reported_when_created(make_watcher, files) -> None:
    target, sentinel = files
    data = target.parent / "later" / "data.csv"  # its folder does not exist either
    _, recorder = make_watcher([target, sentinel, data])
    data.parent.mkdir()
    data.write_text("a,b\n")
    assert recorder.wait_calls(1) == [{data}]
    save_atomic(data, "a,b\n1,2\n")
    settle(recorder, sentinel, [{data}, {data}])


def test_deleted_folder_is_reported_and_watched_again_when_back(make_watcher, files) -> None:
    target, sentinel = files
    module = target.parent / "pkg" / "helpers.py"
    module.parent.mkdir()
    module.write_text("def helper(): ...\n")
    _, recorder = make_watcher([target, sentinel, module])
    module.unlink()
    module.parent.rmdir()
    assert recorder.wait_calls(1) == [{module}]
    module.parent.mkdir()
    module.write_text("def helper(): return 1\n")
    assert recorder.wait_calls(2) == [{module}, {module}]
    save_in_place(module, "def helper(): return 2\n")
    settle(recorder, sentinel, [{module}] * 3)


# -- the watched set changes while running ---------------------------------------------------
def test_watch_adds_and_removes_files_while_running(make_watcher, files, tmp_path, mode) -> None:
    target, sentinel = files
    added = tmp_path / "sub" / "module.py"  # in a folder not watched so far
    added.parent.mkdir()
    added.write_text("y = 0\n")
    # Natively, watch() itself must add the folder's watch: no periodic tick to rely on.
    interval = 0.05 if mode == "polling" else 60.0
    watcher, recorder = make_watcher([target, sentinel], poll_interval=interval)
    save_in_place(added, "y = 1\n")
    added.write_text("y = 2\n")
    watcher.watch([target, sentinel, added])  # its content is recorded now: "y = 2"
    save_atomic(added, "y = 2\n")  # the same bytes as when it became watched
    save_in_place(target, "x = 1\n")
    assert recorder.wait_calls(1) == [{target}]
    save_atomic(added, "y = 3\n")
    assert recorder.wait_calls(2) == [{target}, {added}]
    watcher.watch([target, sentinel])
    save_atomic(added, "y = 4\n")
    settle(recorder, sentinel, [{target}, {added}])


def test_snapshot_records_the_content_a_run_read(make_watcher, files) -> None:
    target, sentinel = files
    watcher, recorder = make_watcher([target, sentinel], debounce=0.3)
    with open(target, "w") as handle:  # open for writing: nothing is read before its close
        handle.write("x = 1\n")
        handle.flush()
        watcher.snapshot([target])  # a run read these bytes: their save is no change
    settle(recorder, sentinel, [])
    save_in_place(target, "x = 2\n")
    assert recorder.wait_calls(2) == [{sentinel}, {target}]


# -- errors and fallback ---------------------------------------------------------------------
def test_on_change_that_raises_is_noticed_and_watching_goes_on(make_watcher, files) -> None:
    target, sentinel = files
    _, recorder = make_watcher([target, sentinel])
    recorder.failures.append(RuntimeError("engine hiccup"))
    save_in_place(target, "x = 1\n")
    assert "engine hiccup" in recorder.wait_notice("on_change raised")
    save_in_place(target, "x = 2\n")
    settle(recorder, sentinel, [{target}, {target}])


class FailingObserver(Observer):  # type: ignore[misc, valid-type]
    """A real observer whose watches on folders named like `fail_on` hit the inotify limit."""

    fail_on = "limited"

    def schedule(self, handler, path, **options):  # type: ignore[no-untyped-def]
        if os.path.basename(path).startswith(self.fail_on):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return super().schedule(handler, path, **options)


@pytest.mark.parametrize("when", ["at_start", "on_a_later_watch"])
def test_os_watch_failure_falls_back_to_polling(files, tmp_path, when) -> None:
    target, sentinel = files
    limited = tmp_path / "limited" / "data.csv"
    limited.parent.mkdir()
    limited.write_text("a\n")
    first = [target, sentinel, limited] if when == "at_start" else [target, sentinel]
    recorder = Recorder()
    watcher = Watcher(
        recorder, poll_interval=0.05, on_notice=recorder.notices.append,
        observer_factory=FailingObserver,
    )  # fmt: skip
    try:
        watcher.watch(first)
        watcher.start()
        watcher.watch([target, sentinel, limited])
        assert watcher.mode == "polling"
        assert "polling" in recorder.wait_notice("inotify watch limit reached")
        save_atomic(limited, "a\n1\n")
        assert recorder.wait_calls(1) == [{limited}]
        save_vim_style(target, "x = 1\n")
        settle(recorder, sentinel, [{limited}, {target}])
        assert len(recorder.notices) == 1
    finally:
        watcher.stop()


def test_inotify_queue_overflow_falls_back_to_polling(files) -> None:
    target, sentinel = files
    recorder = Recorder()
    watcher = Watcher(
        recorder, poll_interval=0.05, on_notice=recorder.notices.append, observer_factory=Observer
    )
    try:
        watcher.watch([target, sentinel])
        watcher.start()
        assert watcher.mode == "native"
        # watchdog reports an overflow only through this log record; replay it.
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert "overflowed" in recorder.wait_notice("polling")
        assert watcher.mode == "polling"
        save_in_place(target, "x = 1\n")
        settle(recorder, sentinel, [{target}])
    finally:
        watcher.stop()


class StalledInotify(InotifyObserver):
    """Our own inotify reader, held after its first read until released: meanwhile the
    kernel's event queue fills up, as when the daemon is starved of CPU."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.held, self.release = threading.Event(), threading.Event()

    def _hand_on(self, raw: list[tuple[int, int, int, str]]) -> None:
        if not self.release.is_set():
            self.held.set()
            self.release.wait(DEADLINE)
        super()._hand_on(raw)


@pytest.mark.skipif(not inotify.available(), reason="inotify is Linux's")
def test_a_real_overflow_of_the_kernel_queue_falls_back_to_polling(files, tmp_path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many events to make")
    target, sentinel = files
    recorder, observer = Recorder(), StalledInotify()
    watcher = Watcher(
        recorder, poll_interval=0.05, on_notice=recorder.notices.append,
        observer_factory=lambda: observer,
    )  # fmt: skip
    try:
        watcher.watch([target, sentinel])
        watcher.start()
        assert watcher.mode == "native"
        (tmp_path / "noise.txt").write_text("")
        assert observer.held.wait(DEADLINE)
        one, two = (os.open(tmp_path / n, os.O_WRONLY | os.O_CREAT) for n in ("a.tmp", "b.tmp"))
        try:
            for _ in range(limit // 2 + 100):  # alternating: the kernel merges no two
                os.write(one, b".")
                os.write(two, b".")
        finally:
            os.close(one)
            os.close(two)
        observer.release.set()
        assert "overflowed" in recorder.wait_notice("polling")
        assert watcher.mode == "polling"
        save_in_place(target, "x = 1\n")
        settle(recorder, sentinel, [{target}])
    finally:
        observer.release.set()
        watcher.stop()


def test_stop_joins_every_thread_and_is_idempotent(files) -> None:
    before = set(threading.enumerate())
    watcher = Watcher(Recorder())
    watcher.watch(files)
    watcher.start()
    assert set(threading.enumerate()) - before
    watcher.stop()
    watcher.stop()
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]
    with pytest.raises(RuntimeError, match="create a new one"):
        watcher.start()


def test_one_file_hasher_for_the_watcher_the_code_index_and_the_store(tmp_path: Path) -> None:
    """What the loader hands the watcher (the code index's digest of the bytes a run read) and
    what the watcher reads from the file are the same fingerprint, the store's."""
    from pyplantd.daemon.watcher import content_hash
    from pyplantd.fingerprint import file_fingerprint
    from pyplantd.signatures.code_index import content_digest

    path = tmp_path / "helper.py"
    path.write_bytes(b"x = 1\n" * 100_000)
    assert content_hash(str(path)) == file_fingerprint(str(path))
    assert content_hash(str(path)) == content_digest(path.read_bytes())
    assert content_hash(str(tmp_path / "gone.py")) is None


@pytest.mark.skipif(not inotify.available(), reason="inotify is Linux's")
def test_events_waiting_in_the_kernel_are_seen_whatever_the_descriptor_number(tmp_path) -> None:
    """A save is read at once only while no other event waits; a daemon with many files open
    gets an inotify descriptor above 1023, which select() cannot look at."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"at most {hard} open files: no descriptor above 1023 to be had")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    observer = None
    try:
        observer = InotifyObserver()
        observer.schedule(Recorder(), str(tmp_path))  # never started: events stay queued
        assert observer._fd > 1023
        assert observer.event_queue.empty()
        (tmp_path / "pipeline.py").write_text("x = 1\n")
        assert not observer.event_queue.empty()
    finally:
        if observer is not None:
            observer.stop()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
