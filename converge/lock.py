"""A per-stack lock kept in the swarm itself, so it works across CI runners and machines.

The lock is a swarm config object named ``converge-lock-<stack>``: creating a config whose name
exists fails, so creation is an atomic test-and-set in the swarm's own store. The config's id is
the lock's id. Its labels say who holds it (user, host, pid, and where ``/proc`` tells, the
process's identity on its machine), since when, and until when: its lease.

A holder is **gone** when its lease expired, or when it ran on this machine (same host name,
boot and pid namespace) and its process no longer exists (a ``kill -9``, a crash, a reboot).
Another machine's holder is trusted until its lease expires. An apply takes over a gone
holder's lock; ``converge unlock STACK LOCK_ID`` removes a lock by hand, and refuses a live
holder's without ``force``.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from converge.engine import Engine
from converge.errors import AlreadyExistsError, Interrupted, LockError, NotFoundError
from converge.naming import LOCK_LABEL_PREFIX, STACK_LABEL, lock_name
from converge.polling import Backoff, Clock, PollTimeoutError, SystemClock, poll_until

__all__ = [
    "HolderState",
    "LockInfo",
    "ProcessIdentity",
    "acquire",
    "holder_state",
    "read_lock",
    "stack_lock",
    "unlock",
    "wait_for_release",
]

HolderState = Literal["live", "gone", "expired"]
"""``live``: holds the lock; ``gone``: its process no longer runs; ``expired``: lease over."""

_OWNER = f"{LOCK_LABEL_PREFIX}owner"
_SINCE = f"{LOCK_LABEL_PREFIX}since"
_EXPIRES = f"{LOCK_LABEL_PREFIX}expires"
_HOST = f"{LOCK_LABEL_PREFIX}host"
_PID = f"{LOCK_LABEL_PREFIX}pid"
_PROCESS = f"{LOCK_LABEL_PREFIX}process"


@dataclass(frozen=True)
class ProcessIdentity:
    """Who holds a lock: enough to tell later, from the same machine, whether it still runs.

    Attributes:
        process: ``<boot id>:<pid namespace>:<start time>`` of the process ("" where ``/proc``
            cannot tell): a pid alone may be reused by another process after a while.
    """

    user: str
    host: str
    pid: int
    process: str = ""

    @property
    def owner(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid}"

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        pid = os.getpid()
        return cls(user, socket.gethostname(), pid, _process_identity(pid))


@dataclass(frozen=True)
class LockInfo:
    """A stack's lock as found in the swarm; ``config_id`` is the lock's id."""

    stack: str
    owner: str
    since: datetime
    expires: datetime
    config_id: str
    host: str = ""
    pid: int | None = None
    process: str = field(default="", repr=False)

    @property
    def lock_id(self) -> str:
        return self.config_id

    def describe(self) -> str:
        return (
            f"{self.owner} since {self.since:%Y-%m-%d %H:%M:%S}Z "
            f"(expires {self.expires:%H:%M:%S}Z; lock id {self.lock_id})"
        )

    def gone_message(self, state: HolderState = "gone") -> str:
        """What to say about a lock whose holder no longer runs, or whose lease expired."""
        why = (
            f"whose lease expired at {self.expires:%Y-%m-%d %H:%M:%S}Z"
            if state == "expired"
            else "which is no longer running"
        )
        return (
            f"stack {self.stack} is locked by {self.owner} (lock id {self.lock_id}), {why}; "
            f"the next apply takes the lock over, or remove it with: "
            f"converge unlock {self.stack} {self.lock_id}"
        )


def read_lock(engine: Engine, stack: str) -> LockInfo | None:
    """The current holder of ``stack``'s lock, if any."""
    for config in engine.configs({"name": lock_name(stack)}):
        spec = config.get("Spec") or {}
        if spec.get("Name") != lock_name(stack):
            continue
        labels = spec.get("Labels") or {}
        pid = labels.get(_PID, "")
        return LockInfo(
            stack=stack,
            owner=labels.get(_OWNER, "unknown"),
            since=_parse_time(labels.get(_SINCE)),
            expires=_parse_time(labels.get(_EXPIRES)),
            config_id=config["ID"],
            host=labels.get(_HOST, ""),
            pid=int(pid) if pid.isdigit() else None,
            process=labels.get(_PROCESS, ""),
        )
    return None


def _parse_time(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def holder_state(
    holder: LockInfo,
    now: datetime | None = None,
    here: ProcessIdentity | None = None,
    alive: Callable[[int, str], bool] | None = None,
) -> HolderState:
    """Whether ``holder`` still holds its lock.

    Args:
        now: wall-clock time, for the lease (the system's by default).
        here: this process (default: ``ProcessIdentity.current()``): a holder on the same
            machine and in the same pid namespace is checked by its pid.
        alive: ``alive(pid, process)`` tells whether that process still runs (default: by
            ``/proc`` or signal 0).
    """
    if holder.expires < (now or datetime.now(UTC)):
        return "expired"
    here = here or ProcessIdentity.current()
    if holder.pid is None or holder.host != here.host:
        return "live"  # another machine: trust the lease
    if holder.process and here.process and _machine(holder.process) != _machine(here.process):
        return "live"  # same host name, another boot or pid namespace: the lease decides
    return "live" if (alive or _process_runs)(holder.pid, holder.process) else "gone"


def _machine(process: str) -> str:
    """The ``<boot id>:<pid namespace>`` part of a process identity."""
    return process.rsplit(":", 1)[0]


def _process_identity(pid: int) -> str:
    """``<boot id>:<pid namespace>:<start time>`` of ``pid`` seen from here; "" if unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.readlink("/proc/self/ns/pid")
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    start = fields[19] if len(fields) > 19 else ""
    return f"{boot}:{namespace}:{start}" if start else ""


def _process_runs(pid: int, process: str) -> bool:
    if process:
        current = _process_identity(pid)
        if current or Path("/proc/self/stat").exists():
            return current == process  # same pid, other start time: the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _labels(
    stack: str, holder: ProcessIdentity, started: datetime, expires: datetime
) -> dict[str, str]:
    labels = {
        _OWNER: holder.owner,
        _HOST: holder.host,
        _PID: str(holder.pid),
        _SINCE: started.isoformat(),
        _EXPIRES: expires.isoformat(),
        STACK_LABEL: stack,
    }
    if holder.process:
        labels[_PROCESS] = holder.process
    return labels


def acquire(
    engine: Engine,
    stack: str,
    *,
    wait: float,
    hold_for: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll: float = 1.0,
    on_wait: Callable[[LockInfo], None] = lambda holder: None,
    on_takeover: Callable[[LockInfo], None] = lambda holder: None,
    clock: Clock | None = None,
    holder: ProcessIdentity | None = None,
) -> LockInfo:
    """Take ``stack``'s lock, waiting up to ``wait`` seconds for a live holder.

    A holder that is gone (its process no longer runs, or its lease expired) is taken over at
    once: its lock is removed and ``on_takeover`` told.

    Args:
        hold_for: the lease: seconds after which the lock counts as expired (set it above the
            apply timeout).
        now: wall-clock time, for the lock's timestamps and its expiry.
        poll: the longest pause between two attempts while waiting.
        clock: measures the wait and sleeps (the system's by default).
        holder: who takes the lock (this process by default).

    Raises:
        LockError: still held by a live holder after ``wait`` seconds; names it and the lock id.
    """
    clock = clock or SystemClock()
    me = holder or ProcessIdentity.current()
    deadline = clock.monotonic() + wait
    holders: list[LockInfo] = []  # seen while waiting: the first is announced, the last named
    created: list[str] = []

    def attempt() -> LockInfo | None:
        while True:
            started = now()
            expires = started + timedelta(seconds=hold_for)
            labels = _labels(stack, me, started, expires)
            try:
                config_id = engine.create_config(lock_name(stack), b"converge lock\n", labels)
            except AlreadyExistsError:
                pass
            else:
                created.append(config_id)
                return LockInfo(
                    stack, me.owner, started, expires, config_id, me.host, me.pid, me.process
                )
            current = read_lock(engine, stack)
            if current is None:
                continue  # released between our create and our read: try again at once
            if holder_state(current, now(), me) != "live":
                # Its apply died without releasing: remove exactly that config and retry.
                _remove_quietly(engine, current)
                on_takeover(current)
                continue
            if not holders and clock.monotonic() < deadline:
                on_wait(current)
            holders.append(current)
            return None

    try:
        return poll_until(
            attempt, timeout=wait, clock=clock, backoff=Backoff(initial=poll / 4, maximum=poll)
        )
    except PollTimeoutError:
        raise LockError(_held_message(holders[-1], wait)) from None
    except BaseException as error:
        # Interrupted while taking the lock: release it if it was made, even when the create
        # landed but its answer did not (then only the lock's labels say it is ours).
        released = False
        for config_id in created:
            with suppress(Exception):
                engine.remove_config(lock_name(stack), config_id)
                released = True
        if not created:
            with suppress(Exception):
                current = read_lock(engine, stack)
                if current is not None and me.process and current.process == me.process:
                    _remove_quietly(engine, current)
                    released = True
        if released and isinstance(error, Interrupted):
            error.locks_released.append(stack)
        raise


def _held_message(holder: LockInfo, wait: float) -> str:
    return (
        f"stack {holder.stack} is locked by {holder.describe()}; waited {wait:g}s "
        f"(--lock-timeout). If that apply is gone, run: "
        f"converge unlock {holder.stack} {holder.lock_id}"
    )


def wait_for_release(
    engine: Engine,
    stack: str,
    *,
    wait: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll: float = 1.0,
    on_wait: Callable[[LockInfo], None] = lambda holder: None,
    clock: Clock | None = None,
    here: ProcessIdentity | None = None,
) -> tuple[bool, LockInfo | None]:
    """Wait, without taking the lock, until no live apply holds ``stack``'s lock.

    For an apply that will write nothing: it must not report a state another apply is still
    changing, and it must not write (taking the lock is a write).

    Returns:
        whether it waited for a live holder at all, and the lock of a holder that is gone (left
        in place for the next apply to take over), if any.

    Raises:
        LockError: still held by a live holder after ``wait`` seconds.
    """
    clock = clock or SystemClock()
    me = here or ProcessIdentity.current()
    holders: list[LockInfo] = []

    def attempt() -> tuple[LockInfo | None] | None:
        current = read_lock(engine, stack)
        if current is None or holder_state(current, now(), me) != "live":
            return (current,)
        if not holders:
            on_wait(current)
        holders.append(current)
        return None

    try:
        (gone,) = poll_until(
            attempt, timeout=wait, clock=clock, backoff=Backoff(initial=poll / 4, maximum=poll)
        )
    except PollTimeoutError:
        raise LockError(_held_message(holders[-1], wait)) from None
    return bool(holders), gone


def remove_gone(engine: Engine, holder: LockInfo) -> None:
    """Remove the lock of a holder that is gone (``wait_for_release`` found it). By its config
    id: if another apply took it over meanwhile, that apply's lock is a new object, left alone.
    """
    _remove_quietly(engine, holder)


def _remove_quietly(engine: Engine, holder: LockInfo) -> None:
    with suppress(NotFoundError):
        engine.remove_config(lock_name(holder.stack), holder.config_id)


def unlock(
    engine: Engine,
    stack: str,
    lock_id: str,
    *,
    force: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    here: ProcessIdentity | None = None,
) -> LockInfo | None:
    """Remove ``stack``'s lock, named by its id (as ``terraform force-unlock LOCK_ID``).

    Returns:
        the lock removed; None when the stack is not locked.

    Raises:
        LockError: ``lock_id`` is not the current lock's id, or its holder still runs (or, on
            another machine, its lease has not expired) and ``force`` is not given.
    """
    holder = read_lock(engine, stack)
    if holder is None:
        return None
    if lock_id != holder.lock_id:
        raise LockError(
            f"the lock of stack {stack} has id {holder.lock_id}, not {lock_id}: it is held by "
            f"{holder.describe()}"
        )
    if not force and holder_state(holder, now(), here) == "live":
        raise LockError(
            f"stack {stack} is locked by {holder.describe()}, which may still be running; "
            f"removing its lock lets another apply interleave with it. If you are sure it is "
            f"gone: converge unlock {stack} {holder.lock_id} --force"
        )
    _remove_quietly(engine, holder)
    return holder


@contextmanager
def stack_lock(
    engine: Engine,
    stack: str,
    *,
    wait: float,
    hold_for: float,
    on_wait: Callable[[LockInfo], None] = lambda holder: None,
    on_takeover: Callable[[LockInfo], None] = lambda holder: None,
    clock: Clock | None = None,
) -> Iterator[LockInfo]:
    """Hold ``stack``'s lock for the duration of the block.

    On an interruption (``Interrupted``: SIGINT, SIGTERM) the lock is released too, and the
    exception records whether it was, for the message the command line prints.
    """
    held = acquire(
        engine,
        stack,
        wait=wait,
        hold_for=hold_for,
        on_wait=on_wait,
        on_takeover=on_takeover,
        clock=clock,
    )
    try:
        yield held
    except Interrupted as interruption:
        try:
            _remove_quietly(engine, held)
        except Exception as error:  # the engine may be what hangs: say so, never hide the stop
            interruption.locks_kept.append(
                f"stack {stack} could not be released ({error}); remove it with: "
                f"converge unlock {stack} {held.lock_id}"
            )
        else:
            interruption.locks_released.append(stack)
        raise
    except BaseException:
        _remove_quietly(engine, held)
        raise
    else:
        _remove_quietly(engine, held)
