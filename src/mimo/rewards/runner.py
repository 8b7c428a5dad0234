"""The code judge's runner: the one program that runs *inside* the sandbox (standard library only).

The judge (:mod:`mimo.rewards.sandbox`) starts ``python -I -S runner.py --checker-fd N [--check-uid C]`` inside
bubblewrap as the sandbox's root with only CAP_SETUID/SETGID/KILL, and keeps it for many jobs (a job = one program
and its tests) so that the sandbox and interpreter start-up is paid once per worker, not once per sample.  Three
kinds of process:

* the **runner** (``main``): reads jobs -- the untrusted code, the tests' *inputs* and a fresh uid ``U``, never the
  expected outputs -- one JSON line each from stdin, compiles the program once per job (compiling runs none of it),
  forks one **solution** process per test, enforces the per-test wall clock, then kills whatever the test left
  running, empties ``/tmp`` (a session where that fails is replaced), reads the test's stdout (a memfd: more than
  the output cap is ``output_limit``) and writes a JSON report line per test (in batches: :class:`_Reports`).
  It keeps uid 0, so the solution can neither signal, ptrace nor read it.
* a **solution** process per test: closes every descriptor but 0-2, drops to uid ``U`` (RLIMIT_NPROC is ignored
  for uid 0), sets rlimits, binds the serializer and the write calls that carry a result out, then runs the
  untrusted code (after :data:`PRELUDE` for stdin and call tests): as ``__main__`` on the test's stdin (``stdin``
  tests), as a call of a named function or ``Solution`` method whose return value goes out on stdout behind a
  nonce-signed marker (``call`` tests), or as an RPC server of its entry point on a socket that is its stdin
  (``serve``, for assert tests).  The modules the prelude imports are imported, and the program's module with the
  prelude's names already bound is built, once by the runner: a test pays for neither (a forked process pays for
  every page it writes to, and binding ~600 names writes to the pages of every object they name).
* the **checker**, forked at start-up before the runner reads anything (so it never holds code or inputs), running
  as uid ``C``.  It gets each job's trusted check code (e.g. HumanEval's ``check(candidate)``) straight from the
  judge on the ``--checker-fd`` socket and runs it with ``candidate`` bound to a proxy whose calls go to the
  solution process.  Return values cross as JSON and are rebuilt by :func:`decode`, so a rigged ``__eq__`` or a
  monkeypatched comparison in the solution process never reaches the assertions.

The value codec (:func:`make_serializer`'s writer in the solution, :func:`decode` wherever values are compared) is
plain JSON plus ``{"$t": kind, "v": ...}`` tags for tuple, set, frozenset, dict (any keys), bytes, complex and
non-finite floats.  :func:`decode` only ever builds those built-in types, so it is safe on hostile input.
"""

from __future__ import annotations

import builtins
import gc
import json
import math
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback

EXIT_MEMORY = 102  # the solution raised MemoryError (RLIMIT_AS)
EXIT_UNENCODABLE = 103  # a call test returned a value the codec cannot carry
EXIT_RUNNER_BUG = 120  # our own code failed in the forked child before the solution ran
STDERR_KEEP = 4096  # bytes of stderr kept (the tail: where tracebacks end)

if __package__:  # imported by the judge as mimo.rewards.runner
    from mimo.rewards.checker import MESSAGE_LIMIT, checker_main, decode, make_serializer
else:  # the script inside the sandbox, with checker.py beside it (-I leaves the script's folder off sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from checker import MESSAGE_LIMIT, checker_main, decode, make_serializer


# ---------------------------------------------------------------------------------------- the solution process


def _exit_builtin(code=None):  # `exit()`/`quit()` come from the site module, which -S skips
    raise SystemExit(code)


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):  # above the inherited hard limit: keep that one
        cur_hard = resource.getrlimit(which)[1]
        resource.setrlimit(which, (min(soft, cur_hard), cur_hard))


def _become_untrusted(limits: dict, uid: int | None, workdir: str) -> None:
    os.setsid()
    os.chdir(workdir)
    mib = 1 << 20
    cpu = max(1, math.ceil(limits["cpu"]))
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # SIGXCPU at the soft limit, SIGKILL one second later
    _limit(resource.RLIMIT_AS, limits["memory_mb"] * mib)
    _limit(resource.RLIMIT_STACK, min(limits["stack_mb"], limits["memory_mb"]) * mib)
    _limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] * mib)
    _limit(resource.RLIMIT_NOFILE, limits["open_files"])
    if uid is not None:  # after this the process holds no capability and cannot signal the runner
        _limit(resource.RLIMIT_NPROC, limits["processes"])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


_OLD_STDIO: list = []
# A test's stdio, made by :func:`prepare_modules` before any fork, so that each test's process has it without
# building it: text layers over fds 0-2 made while memfds (what a stdin or call test gets there) sat in those slots,
# at offset 0, as they are in every test.  The runner itself never reads or writes them, so each test starts with
# them empty.  A serve test's stdin is a socket, so its text layer is made in its own process.
_TEST_STDIO: list = []


def _stdio_streams():
    return (open(0, "r", encoding="utf-8", errors="replace", closefd=False),
            open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False),
            open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1))


def _streams_on_memfds():
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        for fd in (0, 1, 2):
            slot = os.memfd_create("stdio")
            os.dup2(slot, fd)
            os.close(slot)
        return _stdio_streams()
    finally:
        for fd, keep in zip((0, 1, 2), saved):
            os.dup2(keep, fd)
            os.close(keep)


def _fresh_stdio(mode: str) -> None:
    # Keep the runner's stdio objects alive: finalizing them would close fds 0-2, which are now the test's.
    _OLD_STDIO.extend([sys.stdin, sys.stdout, sys.stderr])
    stdin, sys.stdout, sys.stderr = _TEST_STDIO or _stdio_streams()
    if mode == "serve":
        stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdin = sys.__stdin__ = stdin
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
    builtins.exit = builtins.quit = _exit_builtin


# LiveCodeBench puts this before every program it grades (its ``import_string``): wholesale standard-library imports
# and a deep recursion limit.  Valid LiveCodeBench solutions rely on it (bare ``sqrt``, ``Counter``, ``List[int]``
# in a signature, recursion past depth 1000), so stdin and call tests get it unless the judge is told otherwise.
PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                   "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")
PRELUDE = "".join(f"from {m} import *\n" for m in PRELUDE_MODULES) + \
    "".join(f"import {m}\n" for m in PRELUDE_MODULES if m not in ("builtins", "typing")) + \
    "sys.setrecursionlimit(50000)\n"


def _import_prelude_modules() -> None:
    """Import the prelude's modules (in the runner, before any fork).  ``random`` registers an at-fork hook that
    reseeds its global generator in every forked process through the Python-level ``Random.seed``, which cost ~20
    copy-on-write faults a test.  It is imported here with that hook replaced by two that call C directly and do
    what ``random.seed()`` does -- the C-level seed from ``os.urandom``, then ``gauss_next = None`` -- so that every
    test's process, and every process a program forks, still starts from a fresh seed, as in CPython."""
    if "random" not in sys.modules:
        import functools

        register = os.register_at_fork
        os.register_at_fork = lambda **hooks: None
        try:
            import random
        finally:
            os.register_at_fork = register
        generator = random._inst
        os.register_at_fork(after_in_child=functools.partial(type(generator).__mro__[1].seed, generator, None))
        os.register_at_fork(after_in_child=functools.partial(setattr, generator, "gauss_next", None))
    for name in PRELUDE_MODULES:
        __import__(name)


# The program's module, made ready before the fork: ``(name, prelude) -> module``, built by :func:`prepare_modules`
# in the runner.  A test's process then runs the program in its copy-on-write copy of that module instead of
# executing the prelude itself: binding the prelude's ~600 names in a forked child touches (and so copies) the
# pages of every object they name, which cost more than the rest of a small test together.
_READY: dict[tuple[str, bool], object] = {}
_PRELUDE_STDIO = ("stdin", "stdout", "stderr")  # names the prelude takes from sys that each test rebinds
PRELUDE_RECURSION_LIMIT = 50000


def _fresh_module(name: str, prelude: bool):
    module = type(sys)(name)
    module.__builtins__ = builtins
    if prelude:
        limit = sys.getrecursionlimit()
        exec(compile(PRELUDE, "<prelude>", "exec", dont_inherit=True), module.__dict__)
        sys.setrecursionlimit(limit)  # the prelude's limit is set per test, in the test's process
    return module


def prepare_modules() -> None:
    """Build the modules of :data:`_READY` (in the runner, once, after the prelude's modules are imported and
    ``exit``/``quit`` are in builtins)."""
    builtins.exit = builtins.quit = _exit_builtin
    _TEST_STDIO[:] = _streams_on_memfds()
    for name in ("__main__", "solution"):
        for prelude in (False, True):
            _READY[name, prelude] = _fresh_module(name, prelude)
    _warm_type_cache()


def _warm_type_cache() -> None:
    """Look up every attribute of the types programs use most, once, in the runner.  The interpreter caches each
    (type, name) lookup in a table; a lookup that misses writes its slot, and in a test's process every slot
    written is a copy-on-write fault.  With the slots filled before the fork, a test's ``line.split()``,
    ``sys.stdout.write`` or ``deque.popleft`` finds them."""
    import collections

    kinds = (str, bytes, bytearray, int, float, bool, complex, list, tuple, dict, set, frozenset, range, slice,
             object, type, type(sys), type(_TEST_STDIO[0]), collections.deque, collections.defaultdict,
             collections.Counter, collections.OrderedDict)
    for kind in kinds:
        for attr in dir(kind):
            try:
                getattr(kind, attr)
            except Exception:  # a descriptor that only works on instances
                pass


def _module(name: str, prelude: bool) -> dict:
    """The program's module, registered under ``name`` (``import __main__``, pickle and dataclasses find it); the
    runner's and the codec's modules leave ``sys.modules`` so the program cannot reach them by name.  The same
    names as executing :data:`PRELUDE` in a fresh module here would bind (a test checks it)."""
    module = _READY.pop((name, prelude), None) or _fresh_module(name, prelude)
    namespace = module.__dict__
    if prelude:  # what `from sys import *` bound before this process got its own stdio
        for attr in _PRELUDE_STDIO:
            namespace[attr] = getattr(sys, attr)
    sys.setrecursionlimit(PRELUDE_RECURSION_LIMIT if prelude else sys.getrecursionlimit())
    sys.modules[name] = sys.modules["__main__"] = module
    sys.modules.pop("checker", None)
    return namespace


def _compile(code: str):
    # dont_inherit: the runner's own `from __future__ import annotations` must not reach the program
    return compile(code, "<solution>", "exec", dont_inherit=True)


PRECOMPILE_LIMIT = 1 << 20  # characters: a larger program is compiled in each test's process


def precompile(code: str):
    """The program compiled once per job by the runner (compiling runs none of it), or None: then each test's
    process compiles it, so that the program's own compile-time errors and warnings stay in that test, as they
    would be in ``python solution.py``.  Compiling in every test cost ~0.3 ms and ~50 page faults of a ~2 ms test."""
    if len(code) > PRECOMPILE_LIMIT:
        return None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning at compile time: leave it to the test's own compile
            return _compile(code)
    except Exception:  # SyntaxError, a warning, ValueError (NUL bytes), RecursionError (nesting too deep)
        return None


def _load(code, name: str, prelude: bool) -> dict:
    """Run the program (source, or the code object of :func:`precompile`) as module ``name``."""
    namespace = _module(name, prelude)
    exec(code if not isinstance(code, str) else _compile(code), namespace)
    return namespace


def _callable_for(namespace: dict, fn_name: str):
    cls = namespace.get("Solution")
    if isinstance(cls, type) and hasattr(cls, fn_name):  # LeetCode style: a method of class Solution
        return getattr(cls(), fn_name)
    fn = namespace.get(fn_name)
    if not callable(fn):
        raise NameError(f"the solution defines no function {fn_name!r}")
    return fn


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def result_marker(nonce: str) -> bytes:
    """What precedes a call test's result on stdout.  ``nonce`` is fresh per test and lives only in the trusted
    driver's locals (never in a descriptor, a file or the environment), so a program that just writes cannot forge
    it; replies to the checker's calls start with it too."""
    return b"\n\x00mimo-result:" + nonce.encode() + b"\x00"


def _solution_main(code, test: dict, nonce: str, prelude: bool) -> int:
    """Run the untrusted code for one test; returns the exit status (the caller flushes and ``os._exit``s).

    Everything that carries a result out (the serializer, ``os.write``, the digit-limit switch, the stdout flush)
    is bound here, before the program runs, so that the program's patches of modules cannot reach it."""
    mode = test["mode"]
    if mode == "stdin":  # the result is what the program prints: nothing to carry out for it
        _load(code, "__main__", prelude)
        return 0
    serialize, write, set_digits, flush = make_serializer(), os.write, sys.set_int_max_str_digits, sys.stdout.flush
    marker = result_marker(nonce)
    if mode == "call":
        default_digits = sys.get_int_max_str_digits()
        set_digits(0)  # arguments may be big integers; the program itself runs with the default
        args = [json.loads(line) for line in test["args"].split("\n") if line.strip()]
        set_digits(default_digits)
        namespace = _load(code, "solution", prelude)
        value = _callable_for(namespace, test["fn_name"])(*args)
        set_digits(0)
        try:
            text = serialize(value)
        except (TypeError, ValueError, RecursionError) as e:
            print(f"UnencodableResult: {e}", file=sys.stderr)
            return EXIT_UNENCODABLE
        flush()  # the program's own prints first: the runner takes what follows the last marker
        view = memoryview(marker + text.encode())
        while view:
            view = view[write(1, view):]
        return 0
    # serve: answer the checker's calls (on fd 0) until it hangs up
    read, loads, unpack = os.read, json.loads, decode
    pending = [b""]

    def send(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[write(0, view):]

    def readline() -> bytes:  # one request line; b"" once the checker has hung up
        buf = pending[0]
        while b"\n" not in buf:
            chunk = read(0, 1 << 16)
            if not chunk or len(buf) > MESSAGE_LIMIT:
                return b""
            buf += chunk
        line, _, pending[0] = buf.partition(b"\n")
        return line

    namespace = _load(code, "solution", False)
    try:
        fn = _callable_for(namespace, test["entry_point"])
    except Exception as e:
        send(nonce.encode() + b'{"error":' + serialize(f"{type(e).__name__}: {e}").encode() + b"}\n")
        return 1
    signed = nonce.encode()
    send(signed + b'{"ready":true}\n')
    set_digits(0)
    while True:
        line = readline()
        if not line:
            return 0
        request = loads(line)
        args, kwargs = unpack(request["args"]), unpack(request["kwargs"])
        try:
            value = fn(*args, **kwargs)
        except (Exception, SystemExit) as e:  # the candidate raised: the check sees the exception
            data = '{"raise":' + serialize(f"{type(e).__name__}: {e}"[:2000]) + "}"
        else:
            try:
                data = '{"ok":' + serialize(value) + "}"
            except (TypeError, ValueError, RecursionError) as e:
                data = '{"unencodable":' + serialize(str(e)[:200]) + "}"
        send(signed + data.encode() + b"\n")


def _solution(code, test: dict, limits: dict, uid: int | None, workdir: str, fds: dict[int, int],
              nonce: str, prelude: bool) -> None:
    """The forked child: wire fds 0-2 and close every other one, drop privileges, run the code, exit with a status
    the runner decodes."""
    status = EXIT_RUNNER_BUG
    try:
        for target, src in fds.items():  # every source is >= 3: the runner's own fds 0-2 stay open while it serves
            os.dup2(src, target)
        os.closerange(3, 1 << 16)  # no descriptor but stdin/stdout/stderr reaches the program
        _become_untrusted(limits, uid, workdir)
        _fresh_stdio(test["mode"])
        status = -1
        status = _solution_main(code, test, nonce, prelude)
    except MemoryError:
        status = EXIT_MEMORY
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except BaseException:  # the solution's exception: a traceback on stderr, like `python solution.py`
        if status == -1:
            status = 1
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        os._exit(status & 0xFF if status >= 0 else 1)


# ------------------------------------------------------------------------------------------------- the runner


def _memfd_with(data: bytes) -> int:
    fd = os.memfd_create("stdin")
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kill_leftovers(uid: int | None, keep: set[int]) -> None:
    """Kill whatever the solution left behind (daemons, a fork bomb's remains) and reap nothing else."""
    if uid is None:
        return
    strays = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
    if not strays:
        return
    pid = os.fork()
    if pid == 0:  # as uid U, kill(-1) reaches exactly the solution's processes
        try:
            os.setresuid(uid, uid, uid)
            for _ in range(10000):
                os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _clean_dir(path: str, uid: int | None) -> bool:
    """Empty ``path`` (the test's /tmp), links never followed; True when it is empty afterwards.

    The runner may unlink what lies directly in the sticky /tmp it owns, but not what lies in a directory the
    program made (the runner has no CAP_DAC_OVERRIDE): such trees are removed by a process forked for it as the
    program's uid, which owns them.  Not shutil.rmtree: importing shutil brings zlib, bz2 and lzma into the runner,
    and every mapping the runner holds makes each test's fork slower."""
    entries = [os.path.join(path, e) for e in os.listdir(path)]
    if not entries:
        return True
    trees = [e for e in entries if _is_tree(e)]
    if trees and uid is not None:  # the program's directories: removed as their owner
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                for tree in trees:
                    _remove_tree(tree)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    else:  # no uid switch: the program's files are ours
        for tree in trees:
            _remove_tree(tree)
    for entry in entries:
        _quietly(os.rmdir if _is_tree(entry) else os.unlink, entry)
    return not os.listdir(path)


def _is_tree(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _remove_tree(top: str) -> None:
    """Remove the directory tree ``top`` without recursion (a program can nest directories thousands deep) and
    without following links; directories the program made unreadable are opened up first."""
    stack = [(top, False)]
    while stack:
        path, emptied = stack.pop()
        if emptied:
            _quietly(os.rmdir, path)
            continue
        _quietly(lambda p: os.chmod(p, 0o700), path)
        stack.append((path, True))
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((entry.path, False))
            else:
                _quietly(os.unlink, entry.path)


def _quietly(remove, path: str) -> None:
    try:
        remove(path)
    except OSError:
        pass


def _drain(fd: int, buf: bytearray) -> bool:
    """Read what pipe ``fd`` holds into ``buf``, keeping its last :data:`STDERR_KEEP` bytes; False at EOF."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        buf += chunk
        if len(buf) > 2 * STDERR_KEEP:
            del buf[:-STDERR_KEEP]


def _tail(fd: int, keep: int) -> tuple[bytes, int]:
    """The last ``keep`` bytes a test wrote to memfd ``fd`` (whose offset it shares with us), and how many it wrote."""
    size = os.lseek(fd, 0, os.SEEK_CUR)
    start = max(0, size - keep)
    os.lseek(fd, start, os.SEEK_SET)
    chunks, left = [], size - start
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:  # the program truncated its own output: what is left is what it wrote
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), size


def _run_test(code, test: dict, index: int, job: dict, control: socket.socket | None, reports: _Reports) -> dict:
    """One test in a fresh process.  Its stdout is a memfd, read once it has exited (RLIMIT_FSIZE bounds it; more
    than ``output_bytes`` is ``output_limit``); its stderr is a pipe whose tail is kept, so that no amount of it
    fails the program.  While the test runs the runner only waits on its pidfd and that pipe: it writes to (and
    pays a copy-on-write fault for) few pages.  A test still running after :data:`FLUSH_AFTER_S` has the reports
    before it sent, and itself announced as running (:class:`_Reports`)."""
    limits, uid, workdir = job["limits"], job["uid"], job["workdir"]
    mode = test["mode"]
    out_fd = os.memfd_create("stdout")
    err_r, err_w = os.pipe()
    # signs what the trusted driver sends (the result line, the RPC replies); a stdin test sends nothing of it
    nonce = os.urandom(16).hex() if mode != "stdin" else ""
    if mode == "serve":  # the checker's calls come in on the program's stdin (assert tests read no input)
        ours, theirs = socket.socketpair()
        socket.send_fds(control, [json.dumps({"job": job["job"], "i": index, "nonce": nonce}).encode()],
                        [ours.fileno()])
        ours.close()
        stdin_fd = theirs.detach()
    else:  # a call test reads nothing: an empty one
        stdin_fd = _memfd_with(test.get("input", "").encode())
    fds = {0: stdin_fd, 1: out_fd, 2: err_w}
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _solution(code, test, limits, uid, workdir, fds, nonce, bool(job.get("prelude")))
    os.close(stdin_fd)
    os.close(err_w)
    pidfd = os.pidfd_open(pid)
    waiting = select.poll()
    waiting.register(pidfd, select.POLLIN)  # readable once the process has exited
    waiting.register(err_r, select.POLLIN)
    os.set_blocking(err_r, False)
    stderr, exited, deadline = bytearray(), False, start + limits["time"]
    announce_at = start + FLUSH_AFTER_S
    while not exited:
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            break
        if announce_at is not None:
            if now >= announce_at:
                reports.running(index)
                announce_at = None
            else:
                remaining = min(remaining, announce_at - now)
        for fd, _ in waiting.poll(remaining * 1000):
            if fd == pidfd:
                exited = True
            elif not _drain(err_r, stderr):
                waiting.unregister(err_r)
    if not exited:
        os.kill(pid, signal.SIGKILL)
    _, wstatus, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    _kill_leftovers(uid, keep={1, os.getpid(), job.get("checker_pid", 0)})
    _drain(err_r, stderr)  # what it wrote just before exiting (its leftovers are dead: nothing more comes)
    if not _clean_dir(workdir, uid):  # what the test left in /tmp would reach the next: restart afresh
        _DIRTY.append(index)
    os.close(pidfd)
    os.close(err_r)
    cap = limits["output_bytes"]
    stdout, written = _tail(out_fd, cap + 1)
    os.close(out_fd)
    status = "timeout" if not exited else "output_limit" if written > cap else "exited"
    result = None
    if mode == "call":  # the result is what follows the last marker; the program's prints come before it
        cut = stdout.rfind(result_marker(nonce))
        if cut >= 0:
            stdout, result = stdout[:cut], stdout[cut + len(result_marker(nonce)):].decode("utf-8", "replace")
    report = {
        "i": index, "status": status, "wall": round(wall, 4), "cpu": round(usage.ru_utime + usage.ru_stime, 4),
        "maxrss_kb": usage.ru_maxrss, "minflt": usage.ru_minflt, "code": None, "signal": None,
        "stdout": stdout.decode("utf-8", errors="replace") if status != "output_limit" else "",
        "stderr": stderr[-STDERR_KEEP:].decode("utf-8", errors="replace"),
        "result": result,
    }
    if os.WIFEXITED(wstatus):
        report["code"] = os.WEXITSTATUS(wstatus)
    elif os.WIFSIGNALED(wstatus):
        report["signal"] = os.WTERMSIG(wstatus)
    return report


# ----------------------------------------------------------------------------------------------------- main


_DIRTY: list[int] = []  # tests after which /tmp could not be emptied (the judge then replaces the sandbox)
FLUSH_AFTER_S = 0.02  # a test running longer than this has the reports before it sent while it runs
REPORT_BATCH_BYTES = 1 << 16  # reports held back at most


class _Reports:
    """The report lines of one job, sent to the judge in batches: a write and a wake-up of the judge per test cost
    more than a small test's own run.  They go out when :data:`REPORT_BATCH_BYTES` are held, when a test runs past
    :data:`FLUSH_AFTER_S` -- then followed by ``{"running": i}``, so that if the sandbox dies during that test the
    judge knows which one it was -- and at the end of the job.  ``each`` (the judge's rerun after a sandbox died
    with reports held back) sends every report as soon as its test has finished."""

    def __init__(self, out, job_id, each: bool):
        self.out, self.job_id, self.each = out, job_id, each
        self.held: list[bytes] = []
        self.size = 0

    def add(self, report: dict) -> None:
        line = json.dumps(report).encode() + b"\n"
        self.held.append(line)
        self.size += len(line)
        if self.each or self.size >= REPORT_BATCH_BYTES:
            self.flush()

    def running(self, index: int) -> None:
        if not self.each:
            self.held.append(json.dumps({"job": self.job_id, "running": index}).encode() + b"\n")
            self.flush()

    def done(self, restart: bool) -> None:
        """The job's last line, sent with whatever is still held."""
        self.held.append(json.dumps({"job": self.job_id, "done": True, "restart": restart}).encode() + b"\n")
        self.flush()

    def flush(self) -> None:
        if self.held:
            self.out.write(b"".join(self.held))
            self.out.flush()
            self.held, self.size = [], 0


def _ipc_leftovers() -> bool:
    """SysV IPC objects outlive their processes; the judge restarts a sandbox that has any."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                if len(f.read().strip().splitlines()) > 1:
                    return True
        except OSError:
            pass
    return False


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0 (inherited by the checker and the tests): a same-uid program can then neither ptrace us
    nor open our /proc files -- e.g. the checker's channel to the judge, to write a forged outcome there."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # 4 = PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    """Serve jobs, one JSON line each on stdin, until EOF: a report line per test (in batches, see
    :class:`_Reports`), then ``{"job", "done"}``."""
    os.environ.pop("LD_BIND_NOW", None)  # the judge's setting for the runner's own start-up (see sandbox.py)
    check_uid = int(argv[argv.index("--check-uid") + 1]) if "--check-uid" in argv else None
    if check_uid is None:  # not root: the program keeps our uid, so /proc/<runner or checker>/fd must be closed to it
        _not_dumpable()
    channel_fd = int(argv[argv.index("--checker-fd") + 1])
    # Fork the checker before reading anything: it never holds the code or the inputs of any job.
    control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    checker_pid = os.fork()
    if checker_pid == 0:
        control.close()
        try:
            checker_main(socket.socket(fileno=channel_fd), theirs, check_uid)
        finally:
            os._exit(0)
    theirs.close()
    os.close(channel_fd)
    # Limits that are the same for every test and harmless to the runner are set here once, for every test to
    # inherit: no core files, no POSIX message queues (they would outlive the test).
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_MSGQUEUE, 0)
    _import_prelude_modules()  # imported once here, so that a test pays for neither imports nor the prelude
    prepare_modules()
    gc.freeze()  # a collection in a test's process must not walk (and so copy) every page the runner owns
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        job = json.loads(line)
        job["checker_pid"] = checker_pid
        program = precompile(job["code"]) or job["code"]
        reports = _Reports(out, job["job"], each=job.get("reports") == "each")
        for index, test in enumerate(job["tests"]):
            report = _run_test(program, test, test.get("i", index), job, control, reports)
            report["job"] = job["job"]
            reports.add(report)
        restart = _ipc_leftovers() or bool(_DIRTY)  # what outlives the job: the next one needs a fresh sandbox
        reports.done(restart)
        del job, line, reports
    control.close()
    os.waitpid(checker_pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
