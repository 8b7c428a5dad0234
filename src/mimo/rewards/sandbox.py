"""The sandbox around the code judge's runner: bubblewrap, a fresh unprivileged uid per job, rlimits, wall clocks.

A :class:`Sandbox` keeps a few long-lived *sessions*: ``bwrap ... python -I -S runner.py`` processes (see
:mod:`mimo.rewards.runner` for what runs inside) that serve jobs one after another, so bubblewrap and interpreter
start-up (~30-100 ms) is paid once per worker instead of once per sample.  :meth:`Sandbox.run` sends one job (the
code and the tests' inputs -- never the expected outputs) and collects one report per test.  The sandbox has:

* a read-only root made of ``/usr`` (+ the ``/bin``, ``/lib*`` links), the interpreter's prefix and the runner --
  nothing else of the host, so neither the data sets nor the judge's files are readable;
* a private size-capped ``/tmp`` (tmpfs, emptied after every test), fresh ``/proc`` and minimal ``/dev``;
* new PID, network (loopback only, down), IPC and UTS namespaces, ``--die-with-parent``, ``--new-session``,
  an environment of PATH and LANG only (no secret of the judge's leaks in);
* only CAP_SETUID/SETGID/KILL for the runner; the program runs as a fresh unprivileged uid per job (RLIMIT_NPROC is
  ignored for uid 0) with rlimits on CPU, address space, stack, file size, open files, processes and POSIX message
  queues; the runner enforces the wall clock and the output caps and kills what a test leaves running.

The uid switch is ``setgroups``/``setresgid``/``setresuid`` in the forked child rather than ``setpriv`` before an
``exec``: tests are forked from the warm runner (no interpreter start per test), and the runner itself keeps uid 0
so that the program can neither signal nor ptrace it.  The interpreter's prefix is bound read-only with its parent
directories made traversable, so any uid can import the standard library.

Between jobs nothing of a program survives: its uid's processes are killed, ``/tmp`` is emptied (after every
test, too), and a session where SysV IPC objects remain (they outlive processes) or ``/tmp`` could not be emptied
is replaced, as is one that failed or served ``max_jobs_per_session`` jobs.

Without bubblewrap the judge refuses to run unless ``unsafe=True`` (``--unsafe``): then the runner is started
directly, with rlimits and (as root) the uid switch only -- untrusted code can read the host's files.  Not being
root (bwrap in a user namespace) works too but is weaker: the program keeps the judge's uid, so it can signal the
runner (the judge then re-runs the remaining tests), and no process limit is set (RLIMIT_NPROC would count all of
that user's processes), so a fork bomb is stopped only by the wall clock.
Memory is capped per process (RLIMIT_AS), so a job may use up to ``processes x memory_mb``; where a cgroup v2 with
the memory and pids controllers can be created (:mod:`mimo.rewards.cgroup`), each session also gets one that caps
the total (``memory_mb`` + /tmp + headroom) and the processes; :attr:`Sandbox.memory_cap` says which is in force.

Departure from the paper: MiMo runs code rewards on dedicated online-judge servers whose design is not published;
this is our own design for one machine, scaled out with :mod:`mimo.rewards.pool` (processes, Ray, HTTP).
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from mimo.config import F
from mimo.errors import MimoError

RUNNER = Path(__file__).with_name("runner.py")
CHECKER = Path(__file__).with_name("checker.py")  # imported by the runner
UID_BASE = 1_000_000  # sandbox uids: UID_BASE + 2 * slot (program) and + 1 (checker); never a real account
UID_SLOTS = 1 << 20
STARTUP_SLACK_S = 10.0  # on top of the per-test limits, for bwrap + interpreter start on a loaded machine
_uid_counter = itertools.count()


@dataclasses.dataclass
class JudgeLimits:
    """Per-test limits of the code judge (the keyword arguments of :func:`mimo.rewards.code.judge`)."""

    time_limit: float = F(6.0, "wall-clock seconds per test (LiveCodeBench uses 6)")
    cpu_limit: float | None = F(None, "CPU seconds per test (RLIMIT_CPU); default: the wall-clock limit")
    memory_mb: int = F(1024, "address space per process of the program (RLIMIT_AS), MiB")
    stack_mb: int = F(256, "stack size of the program (RLIMIT_STACK), MiB, for deep recursion")
    file_size_mb: int = F(16, "largest file the program may write (RLIMIT_FSIZE), MiB")
    open_files: int = F(64, "open file descriptors of the program (RLIMIT_NOFILE)")
    processes: int = F(8, "processes and threads of the program's uid (RLIMIT_NPROC)")
    output_bytes: int = F(8 << 20, "stdout cap per test, below file_size_mb; a program printing more gets wrong_answer")
    tmp_mb: int = F(64, "size of the private /tmp, MiB")
    prelude: bool = F(True, "put LiveCodeBench's import prelude before stdin/functional programs, as it does")
    cgroup: bool = F(True, "also cap each sandbox's total memory and processes with a cgroup v2 where possible")
    unsafe: bool = F(False, "run without bubblewrap (rlimits only) where bwrap is missing: NOT isolated")

    def __post_init__(self) -> None:
        if self.time_limit <= 0 or self.memory_mb <= 0 or self.processes <= 0 or self.output_bytes <= 0:
            raise MimoError("judge limits: time_limit, memory_mb, processes and output_bytes must be positive")
        if self.output_bytes >= self.file_size_mb << 20:  # stdout is a file, so RLIMIT_FSIZE would stop it first
            raise MimoError(f"judge limits: output_bytes ({self.output_bytes}) must be below file_size_mb "
                            f"({self.file_size_mb} MiB): a test's stdout is a file under that limit")

    def for_runner(self) -> dict:
        return {
            "time": float(self.time_limit), "cpu": float(self.cpu_limit or self.time_limit),
            "memory_mb": self.memory_mb, "stack_mb": self.stack_mb, "file_size_mb": self.file_size_mb,
            "open_files": self.open_files, "processes": self.processes, "output_bytes": self.output_bytes,
        }

    def deadline_s(self, n_tests: int) -> float:
        """How long a whole run may take before the judge kills the sandbox (the runner's own clock fires first)."""
        return STARTUP_SLACK_S + n_tests * (self.time_limit + 2.0)


def make_limits(**kwargs) -> JudgeLimits:
    """``JudgeLimits(**kwargs)`` with a one-line error naming an unknown limit."""
    known = {f.name for f in dataclasses.fields(JudgeLimits)}
    for key in kwargs:
        if key not in known:
            raise MimoError(f"unknown judge limit {key!r} (known: {', '.join(sorted(known))})")
    return JudgeLimits(**kwargs)


@dataclasses.dataclass
class SandboxRun:
    """What one sandbox run produced: runner reports and checker outcomes by test index, and diagnostics."""

    reports: dict[int, dict]
    checks: dict[int, dict]
    error: str = ""  # why the sandbox failed as a whole ("" when the runner finished)
    stderr: str = ""
    running: int | None = None  # the test the runner last announced as running (it reports in batches)


def _allocate_uids() -> tuple[int, int]:
    """A fresh (program uid, checker uid) pair: distinct per job, so RLIMIT_NPROC and kill(-1) stay per job."""
    slot = (os.getpid() * 7919 + next(_uid_counter)) % UID_SLOTS
    return UID_BASE + 2 * slot, UID_BASE + 2 * slot + 1


def _ancestors(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if str(p) != "/"]


class Sandbox:
    """Starts the runner in bubblewrap (or, with ``unsafe``, without it).  Cheap to build; safe to share."""

    def __init__(self, *, unsafe: bool = False, bwrap: str | None = None, python: str | None = None):
        self.bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self.python = os.path.realpath(python or sys.executable)
        self.root = os.geteuid() == 0
        self.unsafe = unsafe
        if not self.bwrap or not os.access(self.bwrap, os.X_OK):
            if not unsafe:
                raise MimoError(
                    "bubblewrap (bwrap) not found: install it (apt-get install bubblewrap) to run untrusted code, "
                    "or pass unsafe=True / --unsafe to run it with rlimits only and NO isolation")
            self.bwrap = None
            warnings.warn("mimo judge: running untrusted code WITHOUT a sandbox (bubblewrap missing, unsafe=True): "
                          "it can read and write this machine's files", RuntimeWarning, stacklevel=2)
            print("mimo judge: WARNING: no bubblewrap, unsafe mode: untrusted code is NOT isolated", file=sys.stderr)
        self.cgroup_parent, self.memory_cap = None, "RLIMIT_AS per process (no bubblewrap, no cgroup)"
        if self.isolated and self.root:
            from mimo.rewards.cgroup import find_parent

            self.cgroup_parent, self.memory_cap = find_parent()
        self._prefix = Path(sys.base_prefix).resolve()
        self._lock = threading.Lock()
        self._idle: dict[int, list[_Session]] = {}
        self.max_jobs_per_session = 1000

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def _bwrap_argv(self, tmp_bytes: int) -> list[str]:
        argv = [self.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if self.root:
            argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
        else:
            argv += ["--unshare-user"]
        argv += ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), str(host)]
        if Path("/etc/ld.so.cache").exists():  # for programs that start other programs
            argv += ["--perms", "0755", "--dir", "/etc", "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        binds = [self._prefix, Path(self.python).parent]
        made: set[str] = {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"}
        for path in binds:
            if any(str(path) == m or str(path).startswith(m + "/") for m in made):
                continue
            for parent in _ancestors(path):  # bwrap would create them 0700: unreadable for the program's uid
                if parent not in made:
                    argv += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            argv += ["--ro-bind", str(path), str(path)]
            made.add(str(path))
        argv += ["--perms", "0755", "--dir", "/judge", "--ro-bind", str(RUNNER), "/judge/runner.py",
                 "--ro-bind", str(CHECKER), "/judge/checker.py",
                 "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(tmp_bytes),
                 "--tmpfs", "/tmp", "--chdir", "/tmp"]
        return argv

    # ------------------------------------------------------------------------------------------- sessions

    def run(self, job: dict, checks: dict | None, limits: JudgeLimits) -> SandboxRun:
        """Run one job (``{"code", "tests"}``, tests carrying their index ``i``) and, when given, its check code
        (``{str(i): {"prelude", "test", "entry_point"}}``) in an idle session, starting one when none is idle."""
        key = (limits.tmp_mb, limits.cgroup)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            session = idle.pop() if idle else None
        if session is None:
            session = _Session(self, tmp_bytes=limits.tmp_mb << 20, cgroup=limits.cgroup)
        try:
            run = session.run(job, checks, limits)
        except BaseException:
            session.close()
            raise
        if session.healthy and session.jobs < self.max_jobs_per_session:
            with self._lock:
                self._idle.setdefault(key, []).append(session)
        else:
            session.close()
        return run

    def close(self) -> None:
        """Stop the idle sessions (a busy one stops when its run ends; all die with this process anyway)."""
        with self._lock:
            sessions = [s for group in self._idle.values() for s in group]
            self._idle.clear()
        for session in sessions:
            session.close()


class _Session:
    """One running sandbox: the runner (and its checker) serving jobs one after another over pipes."""

    def __init__(self, box: Sandbox, tmp_bytes: int, cgroup: bool = True):
        self.jobs, self.healthy = 0, True
        self.cgroup = None
        if cgroup and box.cgroup_parent is not None:
            from mimo.rewards.cgroup import SessionCgroup

            try:
                self.cgroup = SessionCgroup(box.cgroup_parent)
            except OSError:  # e.g. the delegation went away: the rlimits still hold
                self.cgroup = None
        self.check_uid = _allocate_uids()[1] if box.root else None
        self.workdir = "/tmp" if box.isolated else tempfile.mkdtemp(prefix="mimo-judge-")
        self.judge_end, box_end = socket.socketpair()
        if box.isolated:
            argv = box._bwrap_argv(tmp_bytes) + [box.python, "-I", "-S", "-B", "/judge/runner.py"]
        else:
            os.chmod(self.workdir, 0o1777)
            argv = [box.python, "-I", "-S", "-B", str(RUNNER)]
        argv += ["--checker-fd", str(box_end.fileno())]
        if self.check_uid is not None:
            argv += ["--check-uid", str(self.check_uid)]
        # LD_BIND_NOW: the runner resolves every symbol of the interpreter once at start-up, instead of each test's
        # process resolving (and writing into its copy-on-write copy of the symbol table for) every C function it is
        # the first to call, e.g. setrlimit and setresuid.  The runner drops it from its environment at once, so
        # the programs never see it.
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LD_BIND_NOW": "1"}
        self.root, self.error = box.root, ""
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         pass_fds=(box_end.fileno(),), env=env, start_new_session=True, cwd="/",
                                         preexec_fn=self.cgroup.join if self.cgroup else None)
        except OSError as e:
            self.proc, self.healthy, self.error = None, False, f"cannot start the sandbox: {e}"
        box_end.close()
        self.buffers: dict[int, bytearray] = {}
        self.stderr_tail = bytearray()

    def run(self, job: dict, checks: dict | None, limits: JudgeLimits) -> SandboxRun:
        if self.proc is None:
            return SandboxRun({}, {}, error=self.error)
        self.jobs += 1
        job_id = self.jobs
        uid = _allocate_uids()[0] if self.root else None
        frame = {**job, "job": job_id, "uid": uid, "limits": limits.for_runner(), "workdir": self.workdir}
        run = SandboxRun({}, {})
        oom_before = 0
        if self.cgroup is not None:
            self.cgroup.set_limits(limits.memory_mb + limits.tmp_mb, limits.processes)
            oom_before = self.cgroup.oom_kills()
        deadline = time.monotonic() + limits.deadline_s(len(job["tests"]))
        try:
            self.proc.stdin.write(json.dumps(frame).encode() + b"\n")  # the runner reads it whole before starting
            self.proc.stdin.flush()
            if checks:  # the checker reads it only when the first assert test starts: what does not fit in the
                # socket's buffer now goes from a thread (the usual check code fits: no thread start per job)
                payload = json.dumps({"job": job_id, "checks": checks}).encode() + b"\n"
                sent = _send_now(self.judge_end, payload)
                if sent < len(payload):
                    threading.Thread(target=_send_quietly, args=(self.judge_end, payload[sent:]), daemon=True).start()
        except OSError as e:
            self.healthy = False
            run.error = f"the sandbox is gone: {e}; {_last_line(self.stderr_tail.decode(errors='replace'))}"
            return run
        wanted_checks = {t["i"] for t in job["tests"] if t["mode"] == "serve"}
        done = self._collect(job_id, run, wanted_checks, deadline)
        if not done:
            self.healthy = False
            run.error = (f"the sandbox ran past its {limits.deadline_s(len(job['tests'])):.0f}s deadline"
                         if time.monotonic() >= deadline else
                         f"the sandbox stopped: {_last_line(self.stderr_tail.decode(errors='replace'))}")
        run.stderr = self.stderr_tail[-4000:].decode("utf-8", errors="replace")
        if self.cgroup is not None and self.cgroup.oom_kills() > oom_before:
            for report in run.reports.values():  # the OOM killer's victims: SIGKILLed, not by the runner's clock
                if report.get("signal") == signal.SIGKILL and report.get("status") == "exited":
                    report["oom"] = True
        return run

    def _collect(self, job_id: int, run: SandboxRun, wanted_checks: set[int], deadline: float) -> bool:
        """Read report lines (and checker outcomes) of ``job_id`` until its done marker and every outcome of a
        reported assert test are in.  False when the sandbox died or the deadline passed (session unusable)."""
        out, err, chk = self.proc.stdout.fileno(), self.proc.stderr.fileno(), self.judge_end.fileno()
        sel = selectors.DefaultSelector()
        for fd in (out, err, chk):
            sel.register(fd, selectors.EVENT_READ)
        for fd in (out, err):  # not the checker socket: a thread may be blocked sending on it (O_NONBLOCK is shared)
            os.set_blocking(fd, False)
        finished = False
        try:
            while True:
                if finished and wanted_checks.intersection(run.reports) <= set(run.checks):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                for key, _ in sel.select(remaining):
                    try:
                        chunk = os.read(key.fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        if key.fd in (out, chk):
                            return False
                        sel.unregister(key.fd)
                        continue
                    if key.fd == err:
                        self.stderr_tail += chunk
                        del self.stderr_tail[:-65536]
                        continue
                    buf = self.buffers.setdefault(key.fd, bytearray())
                    buf += chunk
                    *lines, rest = bytes(buf).split(b"\n")
                    buf[:] = rest
                    for line in lines:
                        record = json.loads(line)
                        if record.get("job") != job_id:
                            continue  # a late line of an earlier job
                        if "running" in record:
                            run.running = int(record["running"])
                        elif record.get("done"):
                            finished = True
                            if record.get("restart"):  # SysV IPC or /tmp leftovers: start afresh next time
                                self.healthy = False
                        elif key.fd == out:
                            run.reports[int(record["i"])] = record
                        else:
                            run.checks[int(record["i"])] = record
        finally:
            sel.close()

    def close(self) -> None:
        self.healthy = False
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None
        self.judge_end.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.workdir != "/tmp":
            shutil.rmtree(self.workdir, ignore_errors=True)


def _send_now(sock: socket.socket, payload: bytes) -> int:
    """Send what the socket takes without blocking (``MSG_DONTWAIT``: the descriptor itself stays blocking, as the
    thread that may send the rest needs); returns the bytes sent."""
    view, sent = memoryview(payload), 0
    while sent < len(payload):
        try:
            sent += sock.send(view[sent:], socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
    return sent


def _send_quietly(sock: socket.socket, payload: bytes) -> None:
    try:
        sock.sendall(payload)
    except OSError:  # the session died; its run reports that
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


@functools.lru_cache(maxsize=4)
def default_sandbox(unsafe: bool = False) -> Sandbox:
    """The process-wide sandbox manager (its sessions are reused); MimoError when bwrap is missing and not unsafe."""
    box = Sandbox(unsafe=unsafe)
    atexit.register(box.close)
    return box


def sandbox_status() -> str:
    """One line saying how the judge will isolate code on this machine (for ``mimo judge serve`` and the docs)."""
    try:
        box = Sandbox()
    except MimoError as e:
        return f"no sandbox: {e}"
    uid = "a fresh unprivileged uid per job" if box.root else "the caller's uid (not root: weaker)"
    return f"bubblewrap at {box.bwrap}; programs run as {uid}; memory: {box.memory_cap}; interpreter {box.python}"
