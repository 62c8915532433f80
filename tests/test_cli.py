"""Tests of grepq's command line itself (grepq/cli.py): one place for known errors, -v anywhere."""
import argparse
import logging

import pytest

from grepq.cli import build_parser, main


def test_a_bad_config_is_one_line_and_status_2(capsys):
    assert main(["train", "--config", "no_such_preset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grepq train: config file 'no_such_preset' not found") and "Traceback" not in err


def test_a_missing_dataset_root_is_one_line_and_status_2(tmp_path, capsys):
    status = main(["train", "--config", "ll_tiny_cpu", "--data", str(tmp_path / "missing"), "--run-dir",
                   str(tmp_path / "run"), "run.progress=false"])
    assert status == 2
    assert capsys.readouterr().err.strip() == f"grepq train: training data root {tmp_path / 'missing'}: no such folder"


def test_unknown_errors_keep_their_traceback(monkeypatch):
    import grepq.commands.export as export

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(export, "run", broken)
    with pytest.raises(KeyError):
        main(["export", "somewhere"])


@pytest.mark.parametrize("argv, verbose", [(["train"], False), (["-v", "train"], True), (["train", "-v"], True),
                                           (["train", "--verbose", "--print-config"], True)])
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser("train").parse_args(argv).verbose is verbose


def test_verbose_after_an_override_logs_more(capsys):
    root = logging.getLogger()
    level = root.level
    try:
        assert main(["train", "--print-config", "ll.lr=1e-5", "-v"]) == 0
        assert root.level == logging.INFO
    finally:
        root.setLevel(level)
    assert "lr: 1.0e-05" in capsys.readouterr().out


def _undocumented(parser, path):
    """What a parser and its sub-parsers lack: a description, an option's help, a subcommand's help."""
    missing = [] if parser.description else [f"{path}: no description"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                missing += [] if helps.get(name) else [f"{path} {name}: no help in the command list"]
                missing += _undocumented(sub, f"{path} {name}")
        elif not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help")
    return missing


def test_every_command_and_option_is_documented():
    assert _undocumented(build_parser(), "grepq") == []
