"""Every numeric field of every stage config rejects a value outside its domain, at load, in one line."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from mimo.config import list_presets, resolve_config
from mimo.data.cli import SUBCOMMANDS
from mimo.domains import COUNT, COUNT0, domain_of
from mimo.errors import ConfigError

STAGES = [
    ("mimo.train.pretrain", "PretrainConfig", "pretrain"), ("mimo.train.sft", "SFTConfig", "sft"),
    ("mimo.train.mtp", "MtpConfig", "mtp"), ("mimo.rl.trainer", "RLConfig", "rl"),
    ("mimo.eval.cli", "EvalConfig", "eval"), ("mimo.infer.cli", "GenerateConfig", "infer"),
    ("mimo.infer.chat", "ChatConfig", "chat"), ("mimo.infer.serve", "ServeConfig", "serve"),
    ("mimo.demo.family", "DemoConfig", "demo"), ("mimo.rewards.cli", "LevelsConfig", "rewards"),
] + [(module, cls, f"data.{name}") for name, (module, cls, _) in SUBCOMMANDS.items()]


def _stage(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def _numeric_leaves(cls: type, prefix: str = ""):
    """(dotted flag, owning class, field, python type) for every int/float leaf, through nested configs."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _numeric_leaves(tp, f"{prefix}{f.name}.")
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
        if tp in (int, float):
            yield f"{prefix}{f.name}", cls, f, tp


CASES = [
    pytest.param(module, cls, section, flag, id=f"{cls}--{flag}")
    for module, cls, section in STAGES
    for flag, *_ in _numeric_leaves(_stage(module, cls))
]


def test_walk_covers_the_stages():
    assert len(CASES) > 150  # every stage contributes its counts, sizes and rates


@pytest.mark.parametrize("module,cls_name,section,flag", CASES)
def test_bad_value_for_every_numeric_field(module, cls_name, section, flag):
    cls = _stage(module, cls_name)
    _, owner, field, tp = next(leaf for leaf in _numeric_leaves(cls) if leaf[0] == flag)
    dom = domain_of(owner, field, tp(1))
    bad = dom.bad_value(tp is int)
    with pytest.raises(ConfigError) as e:
        resolve_config(cls, section, overrides={flag: str(bad)})
    msg = str(e.value)
    assert msg.startswith(f"--{flag}: must be") and "\n" not in msg, msg


@pytest.mark.parametrize("module,cls_name,section", [s[:3] for s in STAGES])
def test_defaults_and_presets_lie_in_their_domains(module, cls_name, section):
    cls = _stage(module, cls_name)
    for preset in [None, *list_presets()]:
        resolve_config(cls, section, preset=preset)


def test_zero_allowed_exactly_where_the_doc_gives_it_a_meaning():
    from mimo.train.pretrain import PretrainConfig
    from mimo.train.sft import SFTConfig

    fields = {f.name: f for f in dataclasses.fields(SFTConfig)}
    assert domain_of(SFTConfig, fields["steps"], 0) is COUNT0  # "0: from epochs"
    fields = {f.name: f for f in dataclasses.fields(PretrainConfig)}
    assert domain_of(PretrainConfig, fields["batch_size"], 0) is COUNT
    assert resolve_config(SFTConfig, "sft", overrides={"steps": "0"}).steps == 0


def test_yaml_error_names_file_and_line(tmp_path):
    from mimo.train.pretrain import PretrainConfig

    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  hidden_size: 64\npretrain:\n  min_lr_ratio: 0.1\n  batch_size: -3\n")
    with pytest.raises(ConfigError, match=rf"^{p}:5: pretrain.batch_size: must be >= 1, got -3$"):
        resolve_config(PretrainConfig, "pretrain", config_file=str(p))
    p.write_text("model:\n  hidden_size: 0\n")
    with pytest.raises(ConfigError, match=rf"^{p}:2: model.hidden_size: must be >= 1, got 0$"):
        resolve_config(PretrainConfig, "pretrain", config_file=str(p))
    p.write_text("pretrain:\n  stages:\n    - steps: -5\n")
    with pytest.raises(ConfigError, match=r"stages\[0\].steps: must be >= 1, got -5$"):
        resolve_config(PretrainConfig, "pretrain", config_file=str(p))
    p.write_text("pretrain:\n  min_lr_ratio: .nan\n")
    with pytest.raises(ConfigError, match="min_lr_ratio: must be"):
        resolve_config(PretrainConfig, "pretrain", config_file=str(p))


def _tree_sums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv", [
    ["pretrain", "--max_steps", "-5"], ["pretrain", "--max_steps", "0"], ["sft", "--steps", "-1"],
    ["rl", "--steps", "-2"], ["pretrain", "--batch_size", "0"], ["rl", "--actor.lr", "-1"],
    ["generate", "--top_p", "1.5"], ["eval", "--n", "-1"],
])
def test_cli_bad_values_exit_nonzero_with_one_line(argv, tmp_path):
    (tmp_path / "keep.txt").write_text("untouched")
    before = _tree_sums(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run([sys.executable, "-m", "mimo.cli", *argv, "--out_dir" if argv[0] != "eval" else "--out",
                        str(tmp_path / "run")] if argv[0] not in ("generate",) else
                       [sys.executable, "-m", "mimo.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "must be" in r.stderr, r.stderr
    assert _tree_sums(tmp_path) == before and not (tmp_path / "run").exists()


def test_paths_reject_nul_and_newline_but_prompts_keep_newlines():
    from mimo.infer.chat import ChatConfig
    from mimo.train.sft import SFTConfig

    with pytest.raises(ConfigError, match=r"^--out_dir: must not contain NUL or newline"):
        resolve_config(SFTConfig, "sft", overrides={"out_dir": "runs/a\nb"})
    cfg = resolve_config(ChatConfig, "chat", overrides={"system": "line one\nline two"})
    assert cfg.system == "line one\nline two"


@pytest.mark.parametrize("quick", [False, True])
def test_the_demo_s_stage_configs_lie_in_their_domains(quick, tmp_path):
    from mimo.demo.family import DemoConfig
    from mimo.demo.stages import rl_config, sft_config

    cfg = DemoConfig(quick=quick).scaled()
    assert sft_config(cfg, tmp_path, tmp_path / "base").overwrite
    rl = rl_config(cfg, tmp_path, tmp_path / "sft", "rl", cfg.rl_steps)
    assert rl.toy.heldout_math == 0 and rl.overwrite
