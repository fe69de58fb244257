"""`restyle` run in-process by the command line's tests: its exit code and what it printed."""

from __future__ import annotations

from generation.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv: str) -> str:
    """The one line a refusal prints, with exit code 2 and no traceback."""
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]
