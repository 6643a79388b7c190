"""One settings table: the config dataclasses (GenerationConfig, TrainConfig, EvalConfig) are the only place of each
setting's name, default, check and help. generate_dataset's and evaluate's parameters and the CLIs' flags are made
from them, so a changed default shows up everywhere; and the memory estimate that refuses a batch too large.

Nothing here compiles a new shape: the memory estimates use tests/support.py's (8, 20) reach/scripted shape."""

import dataclasses
import inspect

import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON
from mjxgen import checks, cli, generate_dataset
from mjxgen.cli import arguments, datagen, learn
from mjxgen.generate import memory
from mjxgen.generate.config import SEED_000_PARAMETERS, GenerationConfig
from mjxgen.learn.evaluate import EvalConfig, evaluate
from mjxgen.learn.models import BCConfig
from mjxgen.learn.training import TrainConfig

SEED_000_ORDER = ["env_name", "n_episodes", "output_path", "policy_type", "domain_randomization", "max_steps", "seed"]


def with_default(cls, name, value):
    """A copy of the frozen config dataclass cls whose field `name` defaults to value (its metadata kept)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.make_dataclass(cls.__name__, [(name, checks.type_hints(cls)[name], dataclasses.field(
        default=value, metadata=f.metadata))], bases=(cls,), frozen=True, kw_only=True)


# ---------------------------------------------------------------------------------------------- the signatures
def test_generate_dataset_signature_is_generation_config():
    params = inspect.signature(generate_dataset).parameters
    fields = {f.name: f for f in dataclasses.fields(GenerationConfig)}
    assert list(SEED_000_PARAMETERS) == SEED_000_ORDER
    assert list(params)[:7] == SEED_000_ORDER  # seed 000's seven, in its order
    assert set(params) == set(fields) and len(params) == len(fields)  # every field, nothing else
    for name, p in params.items():
        assert p.default == fields[name].default, name
        assert p.kind == (p.POSITIONAL_OR_KEYWORD if name in SEED_000_ORDER else p.KEYWORD_ONLY), name
    assert [n for n in params if n not in SEED_000_ORDER] == [n for n in fields if n not in SEED_000_ORDER]
    assert params["max_steps"].default == 200 and params["batch_size"].default == 256
    assert "batch_size: int = 256" in str(inspect.signature(generate_dataset))  # what help() shows


def test_signature_follows_a_changed_default():
    copy = with_default(GenerationConfig, "max_steps", 321)
    fn = checks.with_settings(copy, positional=SEED_000_PARAMETERS)(lambda cfg: cfg)
    assert inspect.signature(fn).parameters["max_steps"].default == 321
    assert fn("reach", 4, "x.h5").max_steps == 321  # and the call builds the config with it


def test_docstring_args_come_from_the_help_text():
    doc = inspect.getdoc(generate_dataset)
    for name, (_, s) in checks.settings_of(GenerationConfig).items():
        assert f"\n  {name}: {s.help.split()[0]}" in doc, name
    assert "{settings}" not in doc and "Returns:" in doc
    assert "\n  checkpoint: " in inspect.getdoc(evaluate) and "\n  batch: episodes per compiled call" in \
        inspect.getdoc(evaluate)


def test_unknown_keywords_are_a_type_error_naming_them(tmp_path):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'batch' \(did you mean batch_size\?\)"):
        generate_dataset("reach", 4, tmp_path / "x.h5", batch=8)
    with pytest.raises(TypeError, match="arguments 'episodes', 'colour'"):
        generate_dataset(episodes=4, colour="red", output_path=tmp_path / "x.h5")
    with pytest.raises(TypeError, match="too many positional arguments"):
        generate_dataset("reach", 4, tmp_path / "x.h5", "scripted", False, 20, 7, 64)
    with pytest.raises(TypeError, match="multiple values for argument 'env_name'"):
        generate_dataset("reach", env_name="reach", output_path=tmp_path / "x.h5")
    with pytest.raises(TypeError, match="'episodes'"):
        evaluate(tmp_path / "final.npz", episodes=3)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_signature_is_eval_config():
    params = inspect.signature(evaluate).parameters
    assert list(params)[:3] == ["checkpoint", "env_name", "n_episodes"]
    assert params["checkpoint"].default is inspect.Parameter.empty
    for f in dataclasses.fields(EvalConfig):
        assert params[f.name].default == f.default
    assert params["seed"].kind == inspect.Parameter.KEYWORD_ONLY and params["seed"].default == 1


@pytest.mark.parametrize("cls, n", [(GenerationConfig, 8), (TrainConfig, 8), (EvalConfig, 8), (BCConfig, 5)])
def test_every_checked_setting_is_checked_on_construction(cls, n):
    """A config whose __post_init__ forgot check_fields would take anything: each checked field refuses a value of
    no sensible type, naming the field."""
    checked = [name for name, (_, s) in checks.settings_of(cls).items() if s.check is not None or s.choices]
    assert len(checked) >= n
    for name in checked:
        with pytest.raises((TypeError, ValueError), match=name):
            cls(**{name: object()})


# ---------------------------------------------------------------------------------------------- the CLIs' flags
def _help(argv, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per flag
    with pytest.raises(SystemExit) as e:
        cli.main(argv) if argv[0] != "task" else cli.task_main("reach", argv[1:])
    assert e.value.code == 0
    return capsys.readouterr().out


def _flag_line(help_text: str, flag: str) -> str:
    """A flag's entry of --help: its line and the help text argparse put on the next one, if any."""
    lines = help_text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    follows = i + 1 < len(lines) and lines[i + 1].startswith("    ") and not lines[i + 1].strip().startswith("-")
    return " ".join(x.strip() for x in lines[i:i + 1 + follows])


@pytest.mark.parametrize("command, cls, flags", [
    (["datagen", "--help"], GenerationConfig, {"max_steps": "--max-steps", "seed": "--seed", "n_episodes":
                                               "--n-episodes", "output_path": "--output", "batch_size": "--batch-size",
                                               "image_size": "--image-size", "compression": "--compression"}),
    (["task", "--help"], GenerationConfig, {"max_steps": "--max-steps", "batch_size": "--batch", "dtype": "--dtype"}),
    (["train", "--help"], TrainConfig, {"max_steps": "--max-steps", "lr": "--lr", "seed": "--seed",
                                        "checkpoint_every": "--checkpoint-every", "output_dir": "--output-dir",
                                        "lr_schedule": "--lr-schedule", "warmup_steps": "--warmup-steps",
                                        "val_fraction": "--val-fraction", "val_every": "--val-every",
                                        "eval_every": "--eval-every", "eval_episodes": "--eval-episodes"}),
    (["train", "--help"], BCConfig, {"hidden": "--hidden", "n_obs": "--n-obs", "chunk": "--chunk",
                                     "ensemble_decay": "--ensemble-decay", "gripper_head": "--gripper-head"}),
    (["eval", "--help"], EvalConfig, {"n_episodes": "--n-episodes", "seed": "--seed", "max_steps": "--max-steps"}),
])
def test_help_shows_each_dataclass_default(command, cls, flags, capsys, monkeypatch):
    text = _help(command, capsys, monkeypatch)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, flag in flags.items():
        shown = arguments._default_text(defaults[name])
        assert _flag_line(text, flag).endswith(f"(default {shown})"), (flag, _flag_line(text, flag))
    for name, (_, s) in checks.settings_of(cls).items():  # every flag's help is the table's
        if s.flag is not None and name in flags:
            assert (s.flag_help or s.help) in _flag_line(text, flags[name])


def test_the_flags_follow_a_changed_dataclass_default(capsys, monkeypatch):
    monkeypatch.setattr(datagen, "GenerationConfig", with_default(GenerationConfig, "max_steps", 321))
    monkeypatch.setattr(learn, "TrainConfig", with_default(TrainConfig, "lr", 0.25))
    monkeypatch.setattr(learn, "EvalConfig", with_default(EvalConfig, "n_episodes", 7))
    monkeypatch.setattr(learn, "BCConfig", with_default(BCConfig, "chunk", 5))
    assert _flag_line(_help(["datagen", "--help"], capsys, monkeypatch), "--max-steps").endswith("(default 321)")
    assert _flag_line(_help(["task", "--help"], capsys, monkeypatch), "--max-steps").endswith("(default 321)")
    assert _flag_line(_help(["train", "--help"], capsys, monkeypatch), "--lr").endswith("(default 0.25)")
    assert _flag_line(_help(["eval", "--help"], capsys, monkeypatch), "--n-episodes").endswith("(default 7)")
    assert _flag_line(_help(["train", "--help"], capsys, monkeypatch), "--chunk").endswith("(default 5)")
    # ... and the parsed values, where no flag is given
    p = arguments.Parser()
    datagen.add_datagen(p)
    assert p.parse_args([]).max_steps == 321
    t = arguments.Parser()
    learn.add_train(t)
    assert t.parse_args(["--dataset", "x.h5"]).lr == 0.25 and t.parse_args(["--dataset", "x.h5"]).chunk == 5


def test_flags_are_checked_as_the_dataclass_checks_them(capsys):
    p = arguments.Parser(prog="t")
    names = arguments.add_settings(p, GenerationConfig)
    assert "env_config" not in names and "distributed" not in names and "rollout" not in names  # flag=None
    a = p.parse_args(["--image-size", "8", "9", "--no-progress", "--randomize", "--seed", "5"])
    settings = arguments.settings_from(a, names)
    assert settings["image_size"] == (8, 9) and settings["progress"] is False
    assert settings["domain_randomization"] is True and settings["seed"] == 5
    GenerationConfig(**settings)  # what the parser gives, the dataclass takes
    for argv, message in [(["--seed", "-1"], "--seed: must be an integer in [0, 2**32)"),
                          (["--compression", "zip"], "invalid choice: 'zip'"),
                          (["--max-steps", "x"], "--max-steps: must be a positive integer, got 'x'")]:
        with pytest.raises(SystemExit):
            p.parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(TypeError, match="no CLI settings batch"):
        arguments.add_settings(arguments.Parser(), GenerationConfig, batch={"flag": "--b"})


def test_a_tuple_setting_of_any_length_reads_its_values(capsys):
    """BCConfig.hidden (nargs "+"): the flag takes one or more widths, each checked, as a tuple the dataclass
    takes; the other tuple settings keep len(default) values."""
    p = arguments.Parser(prog="t")
    names = arguments.add_settings(p, BCConfig)
    for argv, hidden in [([], (256, 256)), (["--hidden", "32"], (32,)), (["--hidden", "8", "16", "4"], (8, 16, 4))]:
        settings = arguments.settings_from(p.parse_args(argv), names)
        assert settings["hidden"] == hidden and BCConfig(**settings).hidden == hidden
    for argv, message in [(["--hidden", "0"], "--hidden: must be a positive integer, got 0"),
                          (["--hidden"], "expected at least one argument"),
                          (["--ensemble-decay", "inf"], "--ensemble-decay: must be a finite number")]:
        with pytest.raises(SystemExit):
            p.parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"hidden\[1\] must be a positive integer"):
        BCConfig(hidden=(8, -1))


# ---------------------------------------------------------------------------------------------- memory
@pytest.fixture(scope="module")
def small_estimate(reach_env):
    """The estimate of tests/support.py's (8, 20) reach/scripted run, its per-slot bytes and its config."""
    cfg = GenerationConfig(env_name="reach", n_episodes=DURABLE_BATCH, max_steps=DURABLE_HORIZON, seed=7,
                           policy_type="scripted", batch_size=DURABLE_BATCH, output_path="unused.h5")
    est = memory.estimate(cfg, reach_env, DURABLE_BATCH)
    return cfg, est, est.host + est.device


def test_the_estimate_names_the_largest_batch_that_fits(small_estimate, monkeypatch, reach_env, tmp_path):
    cfg, est, per_slot = small_estimate
    monkeypatch.setattr(memory, "host_room", lambda: est.fixed + 5 * per_slot + per_slot // 2)
    with pytest.raises(ValueError, match=r"a batch of 8 episodes does not fit in memory: .* the largest batch that "
                                         r"fits is 5$"):
        generate_dataset("reach", DURABLE_BATCH, tmp_path / "x.h5", "scripted", False, DURABLE_HORIZON, 7,
                         batch_size=DURABLE_BATCH, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before the output is touched
    memory.check_batch(cfg, reach_env, 5)  # 5 fits
    monkeypatch.setattr(memory, "host_room", lambda: est.fixed // 2)
    with pytest.raises(ValueError, match="largest batch that fits is 0 .*8 episode ids"):
        memory.check_batch(cfg, reach_env, 1)


def test_gpu_memory_limits_the_batch_on_a_gpu():
    gpu = memory.Estimate(fixed=100, host=10, device=50, on_cpu=False)
    assert gpu.largest_batch(host_room=1100, device_room=260) == 5  # the device's 260 // 50
    assert gpu.largest_batch(host_room=150, device_room=10**9) == 5  # the host's (150 - 100) // 10
    cpu = memory.Estimate(fixed=100, host=10, device=50, on_cpu=True)
    assert cpu.largest_batch(host_room=1100, device_room=None) == 16  # host and device are one memory
    assert cpu.largest_batch(None, None) is None


def test_batches_that_run_today_are_not_refused(small_estimate, reach_env):
    """Be conservative, but never refuse what runs today on a 24 GB machine (CI's): reach at B = 4096 and 16384
    (T = 200) peaks at a few GB (measured: 1.5 GB at B = 4096), and B = 256 with 64x64 images rendered inside the
    program, whose frames the estimate counts in every segment and block the run may hold (about 5 GB)."""
    _, est, _ = small_estimate

    def need(batch, **kw):
        cfg = GenerationConfig(env_name="reach", policy_type="scripted", n_episodes=batch, batch_size=batch, **kw)
        e = memory.estimate(cfg, reach_env, DURABLE_BATCH)  # per slot, whatever the batch: the (8, ...) shapes
        return e.fixed + batch * (e.host + e.device)

    assert need(16384) < 6e9 and need(4096) < 2.5e9
    assert need(16384, rollout="fixed") < 6e9
    assert need(256, camera=True) < 6e9
    assert need(16384) > 16384 * 46e3  # above what a slot was measured to hold
