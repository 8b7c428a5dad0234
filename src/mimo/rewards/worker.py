"""A reward worker process and the one function every backend calls to score a task.

``python -m mimo.rewards.worker [--warm-math]`` reads tasks, one JSON line each, on stdin and writes one JSON line
per task on its stdout::

    {"id": 7, "kind": "math", "completion": "...", "reference": "\\\\frac{1}{2}", "math_timeout_s": 2}
    -> {"id": 7, "score": 1.0, "reason": "", "verdicts": []}

Kinds: ``math`` (reference: the gold answer), ``code`` (reference: ``{"tests", "levels", "scheme", ...}``, see
:func:`mimo.rewards.code.code_reward`; the code is taken from the completion's last fenced block) and ``judge``
(the completion *is* the code; the score uses the reference's scheme, vanilla by default) and ``gold`` (data
curation: does Math-Verify parse the reference, a gold answer, to a mathematical object; the completion is
ignored; see :func:`mimo.rewards.math.gold_check`).

Math-Verify's signal-based timeouts are used here, on this process's main thread; the parent
(:class:`mimo.rewards.pool.RewardPool`) adds the wall-clock kill for hangs inside C code.  Started with
``MIMO_LIGHT_IMPORT=1`` (see :mod:`mimo.rewards`), so importing ``mimo`` stays cheap: no torch, no transformers.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

from mimo.errors import MimoError
from mimo.rewards import RewardResult

KINDS = ("math", "code", "judge", "gold")


def score(task: dict) -> RewardResult:
    """Score one task dict (``kind``, ``completion``, ``reference``, optional ``limits``, ``math_timeout_s``)."""
    kind, completion, reference = task.get("kind"), task.get("completion"), task.get("reference")
    if kind not in KINDS:
        raise MimoError(f"reward kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(completion, str):
        raise MimoError(f"{kind} task: the completion must be a string, got {type(completion).__name__}")
    if kind == "gold":
        from mimo.rewards.math import gold_check

        if not isinstance(reference, (str, int, float)):
            raise MimoError(f"gold task: the reference must be the gold answer, got {type(reference).__name__}")
        return gold_check(reference, timeout_s=task.get("math_timeout_s"))
    if kind == "math":
        from mimo.rewards.math import math_reward

        if not isinstance(reference, (str, int, float)):
            raise MimoError(f"math task: the reference must be the gold answer, got {type(reference).__name__}")
        return math_reward(completion, reference, timeout_s=task.get("math_timeout_s"))
    from mimo.rewards.code import code_reward, judge, judged_reward

    if not isinstance(reference, dict) or not isinstance(reference.get("tests"), list):
        raise MimoError(f"{kind} task: the reference must be a dict with a 'tests' list")
    limits = {**(task.get("limits") or {}), **(reference.get("limits") or {})}
    if kind == "code":
        return code_reward(completion, reference, **limits)
    return judged_reward(judge(completion, reference["tests"], fn_name=reference.get("fn_name"), **limits),
                         reference)


def _exit_with_parent(parent: int) -> None:
    """A worker whose pool died (killed Ray actor, crashed trainer) must not live on, e.g. stuck in a hang."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # Our replies go to a private copy of stdout; fd 1 becomes stderr so that a stray print (ours or a library's)
    # can never corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if "--warm-math" in argv:
        from mimo.rewards.math import _math_verify

        _math_verify()
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        task = json.loads(line)
        try:
            reply = {"id": task.get("id"), **score(task).to_dict()}
        except MimoError as e:
            reply = {"id": task.get("id"), "error": str(e), "user_error": True}
        except Exception as e:  # noqa: BLE001 -- reported to the caller's future, the worker keeps serving
            reply = {"id": task.get("id"), "error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
