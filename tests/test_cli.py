"""The CLI shell: library errors become one line and exit status 2."""

from typer.testing import CliRunner

from crossent.cli import app


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
