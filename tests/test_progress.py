"""Progress in a log: plain lines, none for a short stage, at most one every 30 s, one at the end."""

from __future__ import annotations

from harness import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_are_spaced_and_a_short_stage_prints_nothing(capsys, monkeypatch):
    monkeypatch.setattr(progress, "context", "")
    clock = Clock()
    quick = progress._Lines("encoding documents", clock)
    for done in range(1, 101):
        clock.now = done * 0.1
        quick.update(done, 100)
    quick.finish()
    assert capsys.readouterr().err == ""

    clock.now = 0.0
    slow = progress._Lines("training finetune-r0", clock)
    for step in range(1, 121):
        clock.now = step * 1.0  # one step a second, 120 steps
        slow.update(step, 120, f"loss {1 / step:.3f}")
    slow.finish()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4  # at 30, 60, 90 and 120 s (the last is the end: not repeated)
    assert lines[0] == "training finetune-r0: 30/120 (25%), 30s elapsed, about 1m30s left, loss 0.033"
    assert lines[-1].startswith("training finetune-r0: 120/120 (100%), 2m00s elapsed")
    assert "\r" not in "".join(lines)
    clock.now = 0.0
    stopped = progress._Lines("mining", clock)
    clock.now = 31.0
    stopped.update(10, 100)
    clock.now = 40.0
    stopped.update(11, 100)
    stopped.finish()  # a stage that ends between two lines says where it ended
    assert capsys.readouterr().err.splitlines()[-1].startswith("mining: 11/100 (11%), 40s elapsed")


def test_modes(monkeypatch, capsys):
    monkeypatch.setattr(progress, "context", "")
    monkeypatch.setattr(progress, "mode", "off")
    with progress.bar("x") as update:
        update(1, 2)
    progress.note("starting")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "mode", "bar")
    progress.note("finetune-r0 on demo (test)")
    assert capsys.readouterr().err == "finetune-r0 on demo (test)\n"
    monkeypatch.setattr(progress, "mode", "lines")
    progress.note("finetune-r1 on demo (test)")
    assert capsys.readouterr().err == ""  # in a log: the prefix of the lines that follow
    clock = Clock()
    lines = progress._Lines("mining", clock)
    clock.now = 31
    lines.update(5, 10)
    assert capsys.readouterr().err.startswith("finetune-r1 on demo (test): mining: 5/10 (50%), 31s elapsed")
