"""Value domains of config fields: the range every count, size, rate and path field must lie in.

:func:`mimo.config.from_dict` checks every leaf value it sets against :func:`domain_of`, so a bad value from a
preset, a YAML file or a CLI flag stops at load time with one line naming the field (``--max_steps: must be >= 1,
got -5``) instead of training for -5 steps or silently falling back to a default.

Domains are keyed by the field's name, which the stage configs use consistently (``lr``, ``top_p``,
``batch_size``, ``*_steps``, ``*_timeout``); a ``Class.field`` key overrides the name.  Integers are counts: at
least 1, or at least 0 when the field's doc gives 0 a meaning (``"checkpoint every N steps (0: only at the
end)"``) or 0 is its default, so the doc and the check cannot drift apart.  Floats are finite and non-negative
unless listed here as a probability/fraction in [0, 1] or a strictly positive quantity.  Strings that name files or
directories must not contain NUL or newline characters (they would be cut short by the OS or corrupt the saved config).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from mimo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Domain:
    """``lo <= value <= hi`` (``lo_open``/``hi_open`` make that bound strict); None: unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return "must be " + " and ".join(parts) if parts else "must be finite"

    def bad_value(self, is_int: bool) -> float:
        """A value outside the domain (tests use it to try every field)."""
        if self.lo is not None:
            bad = self.lo if self.lo_open else self.lo - 1
            return int(bad) if is_int else float(bad)
        if self.hi is not None:
            return int(self.hi) + 1 if is_int else self.hi + 1.0
        return float("nan")


ANY = Domain()
COUNT = Domain(lo=1)
COUNT0 = Domain(lo=0)
NONNEG = Domain(lo=0.0)
POSITIVE = Domain(lo=0.0, lo_open=True)
UNIT = Domain(lo=0.0, hi=1.0)
PROB_OPEN0 = Domain(lo=0.0, hi=1.0, lo_open=True)  # top_p: 0 would keep no token
BETA = Domain(lo=0.0, hi=1.0, hi_open=True)  # Adam betas

# Field name -> domain, for names whose domain is not "a count" (ints) or "non-negative" (floats).
BY_NAME: dict[str, Domain] = {
    "seed": COUNT0, "heldout_seed": COUNT0, "gpqa_seed": COUNT0,
    "port": Domain(lo=0, hi=65535), "max_retries": COUNT0, "keep_checkpoints": COUNT0,
    "warmup_steps": COUNT0, "decay_steps": COUNT0, "batch_warmup_steps": COUNT0,
    # sizes of problem sets: 0 means none of that kind (e.g. RL with no held-out math)
    "heldout_math": COUNT0, "heldout_code": COUNT0, "math_problems": COUNT0, "code_problems": COUNT0,
    "eval_math": COUNT0, "eval_code": COUNT0,
    "top_p": PROB_OPEN0, "eval_top_p": PROB_OPEN0,
    "beta1": BETA, "beta2": BETA,
    "alpha": UNIT, "min_lr_ratio": UNIT, "dedup_threshold": UNIT, "number_guard": UNIT, "valid_prior": UNIT,
    "code_max_pass_rate": UNIT, "math_max_pass_rate": UNIT, "min_quality": UNIT, "teacher_slip_rate": UNIT,
    "teacher_boundary_bias": UNIT, "teacher_mul_bias": UNIT, "teacher_skip_bias": UNIT,
    "epochs": POSITIVE, "initializer_range": POSITIVE, "rms_norm_eps": POSITIVE, "rope_theta": POSITIVE,
    "math_timeout": POSITIVE, "timeout": POSITIVE, "time_limit": POSITIVE, "cpu_limit": POSITIVE,
    "mem_per_cpu_gb": POSITIVE, "valid_horizon": POSITIVE,
}

# Per-class overrides ("Class.field").
BY_FIELD: dict[str, Domain] = {}

# Fields naming files or directories (prompts, stop strings and system prompts may hold newlines; paths not).
PATH_FIELDS = frozenset({"out", "init_from", "tokenizer", "data", "model", "input", "output", "report", "completions",
                         "eval_data", "heldout", "problems", "solutions", "reference", "save_model", "train"})


def is_path_field(name: str) -> bool:
    return name in PATH_FIELDS or name.endswith(("_dir", "_path", "_file", "_files"))


_ZERO_MEANS = re.compile(r"\(0[:=)]|\b0 ?[:=] |\(0 ")


def domain_of(cls: type, field: dataclasses.Field, value: Any) -> Domain | None:
    """The domain a numeric value of ``cls.field`` must lie in (None: not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    key = f"{cls.__name__}.{field.name}"
    if key in BY_FIELD:
        return BY_FIELD[key]
    if field.name in BY_NAME:
        return BY_NAME[field.name]
    if isinstance(value, float):
        return NONNEG
    if field.default == 0 or _ZERO_MEANS.search(field.metadata.get("help", "")):
        return COUNT0
    return COUNT


def _leaves(value: Any):
    """The numbers inside a value (lists of counts, mappings of weights) and strings, for checking."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    else:
        yield value


def check_value(cls: type, field: dataclasses.Field, value: Any, where: str) -> None:
    """Raise a one-line ConfigError naming ``where`` when ``value`` lies outside the field's domain."""
    for leaf in _leaves(value):
        if isinstance(leaf, str):
            if is_path_field(field.name) and ("\0" in leaf or "\n" in leaf):
                raise ConfigError(f"{where}: must not contain NUL or newline characters, got {leaf!r}")
            continue
        dom = domain_of(cls, field, leaf)
        if dom is not None and not dom.contains(leaf):
            raise ConfigError(f"{where}: {dom.describe()}, got {leaf!r}")
