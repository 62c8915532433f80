"""Training configuration: defaults (the paper) → YAML (with base) → overrides, strict errors, presets, schedule."""
import math

import pytest
import torch
import yaml

from grepq.config import ConfigError, Key, defaults, dump_config, flatten, load_config, parse_override
from grepq.eval.schema import EVAL_SCHEMA, REPRODUCE_SCHEMA
from grepq.losses import group_size_from_divisor
from grepq.train.engine import lr_factor
from grepq.train.schema import TRAIN_SCHEMA, config_differences, load_train_config


def test_defaults_are_the_papers_values():
    c = load_train_config()
    ll, hl = c["ll"], c["hl"]
    assert (ll["temperature"], ll["batch_size"], ll["epochs"], ll["lr"], ll["weight_decay"]) == (0.5, 8, 15, 1e-4, 0.05)
    assert (ll["grid"], ll["patch"], ll["feat_dim"], ll["versions"], ll["loss"]) == (7, 32, 128, "distorted", "paper")
    assert (ll["optimizer"], ll["schedule"]) == ("adamw", "cosine")
    assert (hl["temperature"], hl["batch_size"], hl["epochs"], hl["lr"], hl["k2"]) == (0.1, 128, 15, 5e-6, 10.0)
    assert (hl["group_divisor"], hl["head_dim"], hl["crop"], hl["optimizer"]) == (8, 128, 224, "adam")
    assert hl["head_trainable"] and hl["warmup_epochs"] == 0
    assert group_size_from_divisor(hl["batch_size"], hl["group_divisor"]) == 16


def test_every_key_has_a_note():
    def walk(node):
        for v in node.values():
            if isinstance(v, Key):
                assert len(v.doc) > 15
            else:
                walk(v)
    walk(TRAIN_SCHEMA.tree)
    text = dump_config(load_train_config("hl_official"), schema=TRAIN_SCHEMA)
    assert "τ2" in text and "official" in text
    assert yaml.safe_load(text) == load_train_config("hl_official")  # the saved file round-trips


def test_yaml_base_and_overrides_merge_in_order(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: ll_official.yaml\nseed: 7\nll:\n  lr: 3.0e-4\n  epochs: 2\n")
    c = load_train_config(tmp_path / "mine.yaml", ["ll.epochs=5", "hl.lr=1e-5", "run.max_steps=null", "data.limit=3"])
    assert c["seed"] == 7 and c["ll"]["lr"] == 3e-4       # the file
    assert c["ll"]["versions"] == "all"                    # its base
    assert c["ll"]["epochs"] == 5                          # the override wins
    assert c["hl"]["lr"] == 1e-5 and isinstance(c["hl"]["lr"], float)  # "1e-5" is a string to YAML 1.1
    assert c["run"]["max_steps"] is None and c["data"]["limit"] == 3
    assert parse_override("hl.prompts=[good., bad.]") == ("hl.prompts", ["good.", "bad."])


def test_unknown_and_mistyped_keys_are_errors_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError,
                       match=r"unknown configuration key 'll\.temprature'.*did you mean 'll\.temperature'"):
        load_train_config(None, ["ll.temprature=0.2"])
    (tmp_path / "typo.yaml").write_text("hl:\n  grop_size: 4\n")
    with pytest.raises(ConfigError, match=r"hl\.grop_size.*typo\.yaml.*did you mean 'hl\.group_size'"):
        load_train_config(tmp_path / "typo.yaml")
    with pytest.raises(ConfigError, match=r"ll\.batch_size.*expected int, got str"):
        load_train_config(None, ["ll.batch_size=eight"])
    with pytest.raises(ConfigError, match=r"hl\.bn.*expected one of \['global', 'train', 'sync', 'frozen'\]"):
        load_train_config(None, ["hl.bn=synced"])
    with pytest.raises(ConfigError, match=r"'run' .*is a section"):
        load_train_config(None, ["run=3"])
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_train_config(None, ["ll.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_train_config("no_such_preset.yaml")
    with pytest.raises(ConfigError, match=r"ll\.temperature: expected a positive"):
        load_train_config(None, ["ll.temperature=0"])


def test_presets_differ_where_the_spec_says():
    base = {"ll": load_train_config("ll_paper"), "hl": load_train_config("hl_paper")}
    def diff(name):
        return {k: (a, b) for k, a, b in config_differences(base[name[:2]], load_train_config(name))}
    assert diff("ll_official") == {"ll.versions": ("distorted", "all"), "ll.loss": ("paper", "official")}
    off = load_train_config("hl_official")["hl"]
    assert group_size_from_divisor(128, off["group_divisor"]) == 4
    assert (off["temperature"], off["lr"], off["warmup_epochs"], off["loss"]) == (0.5, 1e-6, 2.5, "official")
    assert off["head_activation"] == "relu" and off["head_trainable"] is False
    auth = load_train_config("hl_authors")["hl"]
    assert (auth["group_size"], auth["lr"], auth["epochs"], auth["batch_size"]) == (8, 1e-5, 15, 128)
    paper = defaults(TRAIN_SCHEMA)
    assert load_train_config("hl_paper")["hl"] == paper["hl"] and load_train_config("ll_paper")["ll"] == paper["ll"]
    for tiny in ("ll_tiny_cpu", "hl_tiny_cpu"):
        assert load_train_config(tiny)["run"]["device"] == "cpu"


def test_config_differences_ignore_where_and_when_but_not_epochs():
    a = load_train_config("ll_paper")
    b = load_train_config("ll_paper",
                          ["run.dir=/x", "run.max_steps=3", "data.num_workers=0", "hl.lr=1e-3", "data.root=/d"])
    assert config_differences(a, b) == []              # run control, data location, the other task's section
    c = load_train_config("ll_paper", ["ll.epochs=20", "seed=1"])
    assert [k for k, _, _ in config_differences(a, c)] == ["ll.epochs", "seed"]
    assert set(flatten(a)) == set(flatten(defaults(TRAIN_SCHEMA)))


def test_lr_schedules_match_the_official_ones():
    total, base, eta = 40, 1e-4, 1e-6
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=base)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=eta)
    ours = [base * lr_factor(t, total, 0, "cosine", eta / base) for t in range(total + 1)]
    theirs = []
    for _ in range(total + 1):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)
    warm = int(2.5 * 10)  # official HL: LambdaLR(cur / warmup if cur <= warmup else 1)
    assert lr_factor(0, 150, warm, "constant", 0) == 0.0
    assert lr_factor(10, 150, warm, "constant", 0) == pytest.approx(10 / 25)
    assert lr_factor(25, 150, warm, "constant", 0) == 1.0 and lr_factor(26, 150, warm, "constant", 0) == 1.0
    assert lr_factor(150, 150, 0, "cosine", 0.0) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(lr_factor(75, 150, 0, "cosine", 0.0), 0.5)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation and reproduction: the same machinery, other schemas


def test_eval_keys_name_their_source_and_default_to_the_paper():
    from grepq.config import SOURCES
    from grepq.eval import regression, splits
    from grepq.scoring.settings import COMPONENTS
    for schema in (EVAL_SCHEMA, REPRODUCE_SCHEMA):
        for key, spec in schema.flat.items():
            assert spec.source in SOURCES and len(spec.doc) > 15, key
        text = dump_config(load_config(schema=schema), schema=schema)
        assert yaml.safe_load(text) == load_config(schema=schema)  # round-trips, comments included
        assert "# [paper]" in text and "# [official]" in text and "# [grepq]" in text
    c = load_config(schema=EVAL_SCHEMA)["protocol"]
    assert (c["n_train"], c["splits"]) == (list(splits.PAPER_LABEL_COUNTS), splits.PAPER_N_SPLITS)
    assert c["train_fraction"] == 0.8
    assert c["alphas"] == list(regression.OFFICIAL_ALPHAS) and c["alpha_selection"] == "cv"
    assert EVAL_SCHEMA.flat["scoring.components"].choices == COMPONENTS
    assert load_train_config() == load_config(schema=TRAIN_SCHEMA)


def test_eval_values_lists_and_mappings_are_checked():
    c = load_config(None, ["protocol.n_train=8,16", "protocol.alphas=1,10"], schema=EVAL_SCHEMA,
                    values={"scoring.components": "ll"})
    assert c["protocol"]["n_train"] == [8, 16] and c["protocol"]["alphas"] == [1.0, 10.0]
    assert c["scoring"]["components"] == ["ll"]
    with pytest.raises(ConfigError, match=r"protocol\.n_train.*list of int.*'eight'"):
        load_config(None, ["protocol.n_train=8,eight"], schema=EVAL_SCHEMA)
    with pytest.raises(ConfigError, match=r"protocol\.feature_sets .*expected items in .*'hl\+ll'.*got 'hlll'"):
        load_config(None, ["protocol.feature_sets=[hlll]"], schema=EVAL_SCHEMA)
    with pytest.raises(ConfigError, match=r"protocol\.train_fraction: expected a fraction"):
        load_config(None, ["protocol.train_fraction=1.5"], schema=EVAL_SCHEMA)
    r = load_config(None, ["datasets.clive.root=/d/clive", "datasets.mine.loader=csv",
                           "datasets.mine.options.ref_column=scene", "weights.ll_per_pair_weight.ms_ssim=a.pt"],
                    schema=REPRODUCE_SCHEMA)
    assert r["datasets"] == {"clive": {"root": "/d/clive"},
                             "mine": {"loader": "csv", "options": {"ref_column": "scene"}}}
    assert r["weights"]["ll_per_pair_weight"] == {"ms_ssim": "a.pt"}
    assert yaml.safe_load(dump_config(r, schema=REPRODUCE_SCHEMA)) == r
    with pytest.raises(ConfigError, match=r"datasets\.mine: unknown dataset 'mine'.*set 'loader:'"):
        load_config(None, ["datasets.mine.root=/x"], schema=REPRODUCE_SCHEMA)
    with pytest.raises(ConfigError, match=r"ll_per_pair_weight: unknown pair weight 'psnr'"):
        load_config(None, ["weights.ll_per_pair_weight.psnr=a.pt"], schema=REPRODUCE_SCHEMA)
    with pytest.raises(ConfigError, match=r"tables\.cross_pairs: expected \[train, test\] pairs"):
        load_config(None, ["tables.cross_pairs=[[clive]]"], schema=REPRODUCE_SCHEMA)
def test_bn_global_is_the_presets_mode_and_train_stays_accepted():
    """bn: global (single-process statistics on any number of processes) is the default and every paper/official
    preset's mode; 'train', 'sync' and 'frozen' remain valid; the CPU try-out preset for HL keeps BN frozen."""
    assert load_train_config()["ll"]["bn"] == load_train_config()["hl"]["bn"] == "global"
    for preset in ("ll_paper", "ll_official", "hl_paper", "hl_official", "hl_authors"):
        task = load_train_config(preset)["task"]
        assert load_train_config(preset)[task]["bn"] == "global", preset
    for mode in ("train", "sync", "frozen"):
        assert load_train_config("hl_paper", [f"hl.bn={mode}"])["hl"]["bn"] == mode
    with pytest.raises(ConfigError, match="hl.bn"):
        load_train_config("hl_paper", ["hl.bn=per_gpu"])
    assert load_train_config("hl_tiny_cpu")["hl"]["bn"] == "frozen"


def test_packaged_presets_are_the_repository_presets():
    """grepq/configs/ is package data (pyproject: grepq = ["configs/*.yaml"]), so that pip-installed users get the
    presets; it must stay a copy of configs/, file for file."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    repo = {p.name: p.read_bytes() for p in (root / "configs").glob("*.yaml")}
    packaged = {p.name: p.read_bytes() for p in (root / "grepq" / "configs").glob("*.yaml")}
    assert repo and sorted(packaged) == sorted(repo)
    assert [n for n in repo if packaged[n] != repo[n]] == []


def test_train_print_config_names_every_keys_source(capsys):
    """``grepq train --print-config`` tags every key with where its default comes from, as eval's does."""
    from grepq.cli import main
    from grepq.config import SOURCES

    assert all(k.source in SOURCES for k in TRAIN_SCHEMA.flat.values())
    assert main(["train", "--config", "hl_paper", "--print-config"]) == 0
    values = [line.strip() for line in capsys.readouterr().out.splitlines() if not line.rstrip().endswith(":")]
    assert len(values) == len(TRAIN_SCHEMA.flat)
    assert all(any(f"  # [{s}] " in v for s in SOURCES) for v in values), values
    assert any(v.startswith("lr: 5.0e-06  # [paper] ") for v in values)
    assert any(v.startswith("betas: [0.9, 0.999]  # [official] ") for v in values)
    assert any(v.startswith("num_workers: 4  # [official] ") for v in values)
