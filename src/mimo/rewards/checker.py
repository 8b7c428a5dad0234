"""The judge's value codec and its checker process (standard library only: it also runs inside the sandbox).

**Codec.** A program's return values leave the sandbox as JSON: :func:`encode` (in the solution process) writes
plain JSON plus ``{"$t": kind, "v": ...}`` tags for tuple, set, frozenset, dict (any keys), bytes, complex and
non-finite floats; subclasses of built-ins travel as their base value.  :func:`decode` (wherever values are
compared) builds only those built-in types and raises ValueError on anything else, so it is safe on hostile
input: an object with a rigged ``__eq__`` cannot cross, and comparisons run on values the judge built itself.

**Checker.** HumanEval-style assert tests need their check code to call the program.  The checker process runs
that trusted code with ``candidate`` bound to :class:`_Candidate`, a proxy whose calls travel to the solution
process over a socket (arguments and results through the codec).  The runner forks it before reading any job and
it runs as its own uid, so it never holds the untrusted code and the program can neither signal nor read it;
a monkeypatched ``AssertionError``, ``json`` or ``==`` in the program changes nothing here.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import socket
import sys

MESSAGE_LIMIT = 64 << 20  # longest RPC line accepted between checker and solution


# ------------------------------------------------------------------------------------------------ value codec


def encode(x, depth: int = 0):
    """A JSON-able form of ``x``: built-in values only; subclasses of built-ins travel as their base value."""
    if depth > 200:
        raise TypeError("value nested too deeply")
    if x is None or type(x) is bool or type(x) is str:
        return x
    if isinstance(x, int):
        return int.__int__(x)
    if isinstance(x, float):
        v = float.__float__(x)
        return v if math.isfinite(v) else {"$t": "float", "v": repr(v)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in list.__iter__(x)]
    if isinstance(x, tuple):
        return {"$t": "tuple", "v": [encode(v, depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, (set, frozenset)):
        kind = "frozenset" if isinstance(x, frozenset) else "set"
        return {"$t": kind, "v": [encode(v, depth + 1) for v in (frozenset.__iter__(x) if kind == "frozenset"
                                                                 else set.__iter__(x))]}
    if isinstance(x, dict):
        return {"$t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, (bytes, bytearray)):
        return {"$t": "bytes", "v": bytes(x).decode("latin-1")}
    if isinstance(x, complex):
        return {"$t": "complex", "v": [encode(x.real), encode(x.imag)]}
    raise TypeError(f"cannot encode a value of type {type(x).__name__}")


def decode(obj, depth: int = 0):
    """Rebuild a value from :func:`encode`'s form.  Builds only built-in types; raises ValueError on anything else."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v, depth + 1) for v in obj]
    if isinstance(obj, dict) and set(obj) == {"$t", "v"}:
        kind, v = obj["$t"], obj["v"]
        if kind == "float" and v in ("nan", "inf", "-inf"):
            return float(v)
        if not isinstance(v, list) and kind != "bytes":
            raise ValueError(f"malformed {kind!r} value")
        try:
            if kind == "tuple":
                return tuple(decode(e, depth + 1) for e in v)
            if kind == "set":
                return {decode(e, depth + 1) for e in v}
            if kind == "frozenset":
                return frozenset(decode(e, depth + 1) for e in v)
            if kind == "dict":
                return {decode(k, depth + 1): decode(e, depth + 1) for k, e in v}
            if kind == "bytes" and isinstance(v, str):
                return v.encode("latin-1")
            if kind == "complex" and len(v) == 2:
                return complex(decode(v[0], depth + 1), decode(v[1], depth + 1))
        except (TypeError, ValueError, UnicodeError) as e:  # unhashable set element, bad pair, ...
            raise ValueError(f"malformed {kind!r} value: {e}") from None
    raise ValueError(f"not an encoded value: {str(obj)[:80]}")


def dumps_value(x) -> str:
    return json.dumps(encode(x), allow_nan=False, separators=(",", ":"))


def make_serializer():
    """A private ``dumps_value`` for the solution process, built before the program runs.

    It writes the codec's JSON itself and binds every builtin and helper it uses now, so that patching ``json``,
    ``builtins`` (``isinstance``, ``len``...), this module or the runner afterwards does not change what it writes:
    the program's own modules never serialise its result.  (Python-level patching only: a program that rewrites
    its interpreter's memory can make it write anything -- which is the same as returning that value.)
    """
    from json.encoder import encode_basestring_ascii as quote  # C function when available: nothing to patch

    b_type, b_int, b_float, b_str, b_bool = type, int, float, str, bool
    b_list, b_tuple, b_set, b_frozen, b_dict = list, tuple, set, frozenset, dict
    b_bytes, b_bytearray, b_complex = bytes, bytearray, complex
    is_instance, finite, join, rep_int, rep_float = isinstance, math.isfinite, ",".join, int.__repr__, float.__repr__
    items, it_list, it_tuple, it_set, it_frozen = dict.items, list.__iter__, tuple.__iter__, set.__iter__, \
        frozenset.__iter__
    latin, to_bytes, type_error = bytes.decode, bytes, TypeError
    real, imag = complex.real.__get__, complex.imag.__get__  # not x.real: a subclass may override it

    def tagged(kind: str, body: str) -> str:
        return '{"$t":"' + kind + '","v":' + body + "}"

    def dump(x, depth: int = 0) -> str:
        if depth > 200:
            raise type_error("value nested too deeply")
        t = b_type(x)
        if x is None:
            return "null"
        if t is b_bool:
            return "true" if x else "false"
        if is_instance(x, b_bool):
            return "true" if b_int.__int__(x) else "false"
        if is_instance(x, b_str):
            return quote(b_str.__str__(x))
        if is_instance(x, b_int):
            return rep_int(b_int.__int__(x))
        if is_instance(x, b_float):
            v = b_float.__float__(x)
            return rep_float(v) if finite(v) else tagged("float", quote(rep_float(v)))
        if is_instance(x, b_list):
            return "[" + join([dump(v, depth + 1) for v in it_list(x)]) + "]"
        if is_instance(x, b_tuple):
            return tagged("tuple", "[" + join([dump(v, depth + 1) for v in it_tuple(x)]) + "]")
        if is_instance(x, b_frozen):
            return tagged("frozenset", "[" + join([dump(v, depth + 1) for v in it_frozen(x)]) + "]")
        if is_instance(x, b_set):
            return tagged("set", "[" + join([dump(v, depth + 1) for v in it_set(x)]) + "]")
        if is_instance(x, b_dict):
            pairs = ["[" + dump(k, depth + 1) + "," + dump(v, depth + 1) + "]" for k, v in items(x)]
            return tagged("dict", "[" + join(pairs) + "]")
        if is_instance(x, (b_bytes, b_bytearray)):
            return tagged("bytes", quote(latin(to_bytes(x), "latin-1")))
        if is_instance(x, b_complex):
            return tagged("complex", "[" + dump(real(x)) + "," + dump(imag(x)) + "]")
        raise type_error(f"cannot encode a value of type {t.__name__}")

    return dump


MAX_INT_DIGITS = 20_000  # int(str) is quadratic: a hostile 8 MB number must not stall the judge


def parse_int(text: str) -> int:
    """JSON integers past Python's 4300-digit default, up to :data:`MAX_INT_DIGITS` (ValueError beyond)."""
    if len(text) <= 4000:
        return int(text)
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
    import decimal

    return int(decimal.Decimal(text))


def loads_json(text: str):
    """``json.loads`` with :func:`parse_int` (for results and expected outputs alike)."""
    return json.loads(text, parse_int=parse_int)


def loads_value(text: str):
    """Parse untrusted encoded text (ValueError on anything malformed, including too deep nesting)."""
    try:
        return decode(loads_json(text))
    except RecursionError:
        raise ValueError("value nested too deeply") from None


# ------------------------------------------------------------------------------------------------ the checker


class CandidateDied(Exception):
    """The solution process exited or was killed before answering."""


class CandidateRaised(Exception):
    """The candidate raised an exception (the message names it)."""


class Unencodable(Exception):
    """The candidate returned something that is not a plain value."""


class _Candidate:
    """``candidate(*args)`` in the check code: a call into the solution process, answered as plain values."""

    def __init__(self, conn: socket.socket, nonce: str):
        self._conn, self._reader, self._nonce = conn, conn.makefile("rb"), nonce.encode()

    def _receive(self) -> dict:
        line = self._reader.readline(MESSAGE_LIMIT)
        if not line.endswith(b"\n"):
            raise CandidateDied("the solution process ended")
        if not line.startswith(self._nonce):  # written by the program itself, not by the runner's driver
            raise Unencodable("the solution sent a reply its driver did not sign")
        try:
            reply = json.loads(line[len(self._nonce):])
        except (ValueError, RecursionError):
            reply = None
        if not isinstance(reply, dict):
            raise Unencodable("the solution sent a malformed reply")
        return reply

    def __call__(self, *args, **kwargs):
        request = json.dumps({"args": encode(list(args)), "kwargs": encode(kwargs)}, allow_nan=False)
        try:
            self._conn.sendall(request.encode() + b"\n")
        except OSError:
            raise CandidateDied("the solution process ended") from None
        reply = self._receive()
        if "ok" in reply:
            try:
                return decode(reply["ok"])
            except ValueError as e:
                raise Unencodable(str(e)) from None
        if "raise" in reply:
            raise CandidateRaised(str(reply["raise"]))
        raise Unencodable(str(reply.get("unencodable", "the candidate returned a value that is not plain data")))


def _run_check(check: dict, conn: socket.socket, nonce: str) -> dict:
    candidate = _Candidate(conn, nonce)
    try:
        hello = candidate._receive()
    except CandidateDied:
        return {"outcome": "died", "detail": "the solution exited before serving its entry point"}
    except Unencodable:
        return {"outcome": "error", "detail": "the solution sent a malformed handshake"}
    if not hello.get("ready"):
        return {"outcome": "error", "detail": str(hello.get("error", "bad handshake"))[:2000]}
    namespace = {"__name__": "__check__", "__builtins__": builtins}
    try:
        # dont_inherit: this module's `from __future__ import annotations` must not reach the check code
        exec(compile(check.get("prelude") or "", "<prelude>", "exec", dont_inherit=True), namespace)
        namespace[check["entry_point"]] = namespace["candidate"] = candidate
        exec(compile(check["test"], "<test>", "exec", dont_inherit=True), namespace)
        if callable(namespace.get("check")):
            namespace["check"](candidate)
    except CandidateDied as e:
        return {"outcome": "died", "detail": str(e)}
    except CandidateRaised as e:
        return {"outcome": "error", "detail": str(e)}
    except Unencodable as e:
        return {"outcome": "failed", "detail": f"unencodable result: {e}"}
    except AssertionError as e:
        return {"outcome": "failed", "detail": f"assertion failed {e}".strip()}
    except Exception as e:  # the check tripped over a wrong return value (e.g. len(None)): a wrong answer
        return {"outcome": "failed", "detail": f"{type(e).__name__}: {e}"[:2000]}
    return {"outcome": "passed", "detail": ""}


def checker_main(channel: socket.socket, control: socket.socket, uid: int | None) -> None:
    """Serve check requests: the runner hands over (job, test index, socket to the solution); the judge sends each
    job's check code on ``channel`` before that job starts, and gets one outcome line per check back."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    sys.set_int_max_str_digits(0)
    reader = channel.makefile("rb")
    job_id, checks = None, {}
    while True:
        msg, fds, _, _ = socket.recv_fds(control, 1024, 1)
        if not msg or not fds:
            return
        request = json.loads(msg)
        conn = socket.socket(fileno=fds[0])
        while job_id != request["job"]:  # the judge sent this job's checks before the job itself
            frame = reader.readline()
            if not frame:
                return
            frame = json.loads(frame)
            job_id, checks = frame["job"], frame["checks"]
        try:
            result = _run_check(checks[str(request["i"])], conn, request["nonce"])
        except BaseException as e:  # noqa: BLE001 -- a checker bug must not hang the judge
            result = {"outcome": "error", "detail": f"checker: {type(e).__name__}: {e}"}
        try:
            conn.shutdown(socket.SHUT_RDWR)  # EOF for the solution even while a makefile() still refers to it
        except OSError:
            pass
        conn.close()
        channel.sendall(json.dumps({"job": job_id, "i": request["i"], **result}).encode() + b"\n")
