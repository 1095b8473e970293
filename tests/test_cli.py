import pytest
from click.testing import CliRunner

from pipelines.cli import main


def all_commands(group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [(), *all_commands(main)])
def test_every_command_has_help(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_run_rejects_a_backwards_range(data_dir):
    result = CliRunner().invoke(main, ["run", "--from", "2026-08-05", "--to", "2026-08-01"])
    assert result.exit_code == 2
    assert "before --from" in result.output


def test_run_rejects_a_bad_date(data_dir):
    result = CliRunner().invoke(main, ["run", "--from", "yesterday", "--to", "2026-08-01"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_simulate_writes_the_same_files_for_the_same_seed(tmp_path, data_dir):
    runner = CliRunner()
    args = ["simulate", "--days", "3", "--customers", "40", "--seed", "5"]
    first = runner.invoke(main, [*args, "--out", str(tmp_path / "a")])
    second = runner.invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
