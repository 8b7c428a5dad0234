"""Config resolution: defaults < preset < file < CLI, strict keys and types, one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from mimo.config import F, from_dict, load_yaml, resolve_config, save_yaml, to_dict
from mimo.errors import ConfigError


@dataclasses.dataclass
class Inner:
    hidden_size: int = F(64, "width")
    eps: float = F(1e-5, "norm eps")


@dataclasses.dataclass
class Stage:
    model: Inner = F(factory=Inner, help="model")
    lr: float = F(1e-3, "learning rate")
    steps: int = F(10, "steps")
    name: str = F("run", "run name")
    flag: bool = F(False, "a switch")
    stages: list[int] = F(factory=lambda: [1, 2], help="stage ids")
    resume: str | None = F(None, "checkpoint dir")


def test_defaults_and_overrides():
    cfg = resolve_config(Stage, "pretrain", overrides={"lr": "3e-4", "model.hidden_size": "128", "flag": "true",
                                                         "stages": "1,2,3", "resume": "none"})
    assert cfg.lr == 3e-4 and cfg.model.hidden_size == 128 and cfg.flag is True
    assert cfg.stages == [1, 2, 3] and cfg.resume is None
    assert cfg.model.eps == 1e-5 and cfg.steps == 10


def test_config_file_layers_and_shared_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  hidden_size: 32\npretrain:\n  steps: 5\n  model:\n    eps: 0.1\nsft:\n  whatever: 1\n")
    cfg = resolve_config(Stage, "pretrain", config_file=str(p), overrides={"steps": "7"})
    assert cfg.model.hidden_size == 32 and cfg.model.eps == 0.1 and cfg.steps == 7


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lrr": 1}, "cfg.lrr: unknown key"),
        ({"steps": "ten"}, "cfg.steps: expected an integer"),
        ({"steps": 1.5}, "cfg.steps: expected an integer"),
        ({"flag": "yes"}, "cfg.flag: expected true or false"),
        ({"model": {"hidden": 3}}, "cfg.model.hidden: unknown key"),
        ({"stages": [1, "x"]}, "cfg.stages[1]: expected an integer"),
    ],
)
def test_strict_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Stage, data, "cfg")


def test_cli_errors():
    with pytest.raises(ConfigError, match="--steps: expected an integer"):
        resolve_config(Stage, "pretrain", overrides={"steps": "x"})
    with pytest.raises(ConfigError, match="--nope: unknown option"):
        resolve_config(Stage, "pretrain", overrides={"nope": "1"})
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        resolve_config(Stage, "pretrain", preset="nope")
    with pytest.raises(ConfigError, match="no such config file"):
        resolve_config(Stage, "pretrain", config_file="/nonexistent.yaml")


def test_unknown_section_and_bad_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("pretrian:\n  steps: 1\n")
    with pytest.raises(ConfigError, match="unknown section 'pretrian'"):
        load_yaml(p)
    p.write_text("pretrain: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(p)


def test_save_roundtrip(tmp_path):
    cfg = resolve_config(Stage, "pretrain", overrides={"lr": "0.5"})
    save_yaml(tmp_path / "config.yaml", {"pretrain": to_dict(cfg)})
    again = resolve_config(Stage, "pretrain", config_file=str(tmp_path / "config.yaml"))
    assert again == cfg


def test_bare_boolean_flag_means_true():
    import argparse

    from mimo.config import add_config_args, config_from_args

    parser = argparse.ArgumentParser()
    add_config_args(parser, Stage, "pretrain")
    cfg = config_from_args(Stage, "pretrain", parser.parse_args(["--flag", "--steps", "3"]))
    assert cfg.flag is True and cfg.steps == 3
    cfg = config_from_args(Stage, "pretrain", parser.parse_args(["--flag", "false"]))
    assert cfg.flag is False


def test_rollout_vllm_dtype_is_one_of_the_engines_dtypes():
    from mimo.rl.trainer import RLConfig

    assert resolve_config(RLConfig, "rl", overrides={"rollout.vllm_dtype": "bfloat16"}).rollout.vllm_dtype == "bfloat16"
    with pytest.raises(ConfigError, match=r"--rollout.vllm_dtype: expected one of 'float32', 'bfloat16', 'float16'"):
        resolve_config(RLConfig, "rl", overrides={"rollout.vllm_dtype": "fp8"})
