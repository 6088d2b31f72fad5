"""Auto-bracketing on synthetic finished eval logs with a known convex loss-vs-log-LR curve."""

import json
import math
import os
import subprocess
import sys

import pytest

from anytime.sweeps import bracket, launch
from anytime.sweeps import common as sc
from tests.sweeps import synthetic

GRID = (0.001, 0.003, 0.01)
# The optimum of each method's loss per horizon (peak LR), and inverse-sqrt's optimal offset.
OPT = {
  "cosine": {1: 0.02, 2: 0.003, 4: 0.0003},  # top edge at 1x, interior at 2x, bottom at 4x
  "constant": {1: 0.003, 2: 0.003, 4: 0.003},  # interior everywhere
  "inverse_sqrt": {1: 0.003, 2: 0.003, 4: 0.003},
  "schedule_free": {1: 0.015, 2: 0.015, 4: 0.015},  # top edge
}
OPT_OFFSET = 80.0  # above the offsets (10, 20, 40)


def make_sweep():
  s = sc.load_sweep("smoke")
  s.name = "brk"
  s.horizons = (1, 2, 4)
  s.averages = ("pema6.25", "pema25")
  for m in ("cosine", "constant", "inverse_sqrt", "schedule_free"):
    s[m].lrs = GRID
  s.inverse_sqrt.offsets = (10.0, 20.0, 40.0)
  s.wsd.enabled = False
  s.noise.seeds = ()
  return s


def convex(run: sc.Run, h: float, key: str) -> float:
  """Quadratic in log2(lr) around the method's optimum at h (and in log2(offset))."""
  if run.method == "cosine" and h != run.horizon:
    return 2.5  # an intermediate horizon of a longer cosine run: never scored
  x = 0.01 * math.log2(run.lr / OPT[run.method][h]) ** 2
  if run.offset is not None:
    x += 0.01 * math.log2(run.offset / OPT_OFFSET) ** 2
  return synthetic.base(h) + x + (0.05 if key == "raw" else 0.0)


def finish(runs, root, refill=None):
  """A trainer that finishes every run at once, with the convex losses (strict rounds: it never
  asks ``refill`` for more)."""
  ran = []
  for r in runs:
    if sc.run_state(root, r) != "done":
      synthetic.write_log(sc.workdir(root, r), r, convex)
      ran.append(r.name)
  return {"done": ran, "skipped": [], "failed": [], "unsupported": []}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  s = make_sweep()
  root = str(tmp_path_factory.mktemp("brk"))
  finish(sc.expand(s), root)
  return s, root


def _rows(s, root):
  rows = bracket.status(s, sc.expand(s), root)
  return {(r.label, r.horizon, r.axis): r for r in rows}


def test_edges_propose_the_next_sqrt2_point_and_interior_nothing(finished):
  s, root = finished
  rows = _rows(s, root)
  top = rows[("cosine (tuned)", 1, "lr")]
  assert (top.selected, top.low, top.high, top.status) == (0.01, 0.003, 0.01, "edge-high")
  assert top.adds == (bracket.Point("cosine", lr=0.0141, horizon=1.0),)  # 0.01 x sqrt(2)
  mid = rows[("cosine (tuned)", 2, "lr")]
  assert (mid.selected, mid.low, mid.high, mid.status, mid.adds) == (
    0.003, 0.001, 0.01, "interior", ()
  )  # fmt: skip
  low = rows[("cosine (tuned)", 4, "lr")]
  assert (low.selected, low.status) == (0.001, "edge-low")
  assert low.adds == (bracket.Point("cosine", lr=0.000707, horizon=4.0),)  # 0.001 / sqrt(2)
  for label in ("constant+EMA (tuned)", "constant+EMA25", "constant (last iterate)"):
    assert all(rows[(label, h, "lr")].status == "interior" for h in (1, 2, 4))
  sf = rows[("Schedule-Free", 2, "lr")]
  assert (sf.selected, sf.status, sf.adds) == (
    0.01,
    "edge-high",
    (bracket.Point("schedule_free", lr=0.0141),),
  )
  # Inverse-sqrt: its LR is interior, its offset at the top of (10, 20, 40): next on that x2 grid.
  isq = rows[("inverse-sqrt+EMA (tuned)", 4, "lr")]
  assert (isq.selected, isq.status) == (0.003, "interior")
  off = rows[("inverse-sqrt+EMA (tuned)", 4, "offset")]
  assert (off.selected, off.low, off.status) == (40.0, 20.0, "edge-high")
  assert off.adds == (bracket.Point("inverse_sqrt", lr=0.003, offset=80.0),)  # one run
  # One run covers every anytime horizon: the three horizons' proposals are one point.
  points = bracket.proposals(list(rows.values()), s)
  assert set(points) == {
    bracket.Point("cosine", lr=0.0141, horizon=1.0),
    bracket.Point("cosine", lr=0.000707, horizon=4.0),
    bracket.Point("inverse_sqrt", lr=0.003, offset=80.0),
    bracket.Point("schedule_free", lr=0.0141),
  }
  text = bracket.table(list(rows.values()))
  assert "edge-high  lr 0.0141 at 1x" in text and "lr 0.003 offset 80" in text


def test_a_single_lr_is_bracketed_on_both_sides(finished):
  s, root = finished
  s = bracket.apply(s, [])
  s.schedule_free.lrs = (0.01,)  # as if only 0.01 had been run: its neighbours on both sides
  row = _rows(s, root)[("Schedule-Free", 1, "lr")]
  assert row.status == "edge-both"
  assert [p.lr for p in row.adds] == [0.00707, 0.0141]


def test_an_unfinished_run_makes_its_method_wait(finished, tmp_path):
  s, root = finished
  runs = sc.expand(s)
  for r in runs:  # the same logs, but one constant run stopped before its end
    if r.name != "constant_h4_lr0.01_b0.95_s0":
      os.symlink(sc.workdir(root, r), sc.workdir(str(tmp_path), r))
  rows = bracket.status(s, runs, str(tmp_path))
  assert {r.status for r in rows if r.method == "constant"} == {"waiting"}
  assert all(not r.adds for r in rows if r.method == "constant")
  cos = [r for r in rows if r.method == "cosine"]
  assert [r.status for r in cos] == ["edge-high", "interior", "edge-low"]  # others go on


def test_rounds_grow_the_grid_until_every_pick_is_interior(tmp_path):
  root = str(tmp_path)
  lines = []
  code = bracket.run_rounds(make_sweep(), root, run_fn=finish, max_rounds=5, log=lines.append)
  assert code == 0 and "every selected LR and offset is interior" in lines[-1]
  with open(os.path.join(root, bracket.FILE)) as f:
    saved = json.load(f)
  assert saved["sweep"] == "brk"
  got = {(p["method"], p.get("horizon"), p.get("lr"), p.get("offset")) for p in saved["points"]}
  assert got == {
    ("cosine", 1.0, 0.0141, None),  # 0.01 -> 0.0141 -> 0.0199 (best, optimum 0.02) -> 0.0281
    ("cosine", 1.0, 0.0199, None),
    ("cosine", 1.0, 0.0281, None),
    ("cosine", 4.0, 0.000707, None),  # 0.001 -> 0.000707 -> 0.0005 -> 0.000354 (0.0003 best)
    ("cosine", 4.0, 0.0005, None),
    ("cosine", 4.0, 0.000354, None),
    ("cosine", 4.0, 0.00025, None),
    # Single runs: offsets at the selected LR; once offset 80 is selected, its own LR neighbours.
    ("inverse_sqrt", None, 0.003, 80.0),
    ("inverse_sqrt", None, 0.003, 160.0),
    ("inverse_sqrt", None, 0.00212, 80.0),
    ("inverse_sqrt", None, 0.00424, 80.0),
    ("schedule_free", None, 0.0141, None),
    ("schedule_free", None, 0.0199, None),
  }
  s = bracket.load(make_sweep(), root)
  rows = bracket.status(s, sc.expand(s), root)
  assert {r.status for r in rows} == {"interior"}
  picks = {(r.label, r.horizon, r.axis): r.selected for r in rows}
  assert picks[("cosine (tuned)", 1, "lr")] == 0.0199
  assert picks[("cosine (tuned)", 4, "lr")] == 0.000354
  assert picks[("inverse-sqrt+EMA (tuned)", 1, "offset")] == 80.0
  again = []
  assert bracket.run_rounds(make_sweep(), root, run_fn=finish, max_rounds=5, log=again.append) == 0
  assert "after 0 round(s); every selected LR" in again[-1]
  assert not [line for line in again if line.startswith("bracket: round")]  # nothing to add


def test_overlapping_rounds_start_settled_methods_early_and_grow_the_same_grid(tmp_path):
  # A two-slot launcher that holds every Schedule-Free run until nothing else is left and asks
  # refill for more whenever its queue runs dry (run_local's rule).
  calls = []  # (methods of the runs refill added, Schedule-Free runs unfinished at the time)

  def held_back(runs, root, refill):
    queue = [r for r in runs if sc.run_state(root, r) != "done"]
    while queue:
      others = [r for r in queue if r.method != "schedule_free"]
      run = (others or queue)[0]
      queue.remove(run)
      synthetic.write_log(sc.workdir(root, run), run, convex)
      if not others or len(others) == 1:  # the other slot would go idle: ask for more
        extra = refill()
        unfinished = sum(r.method == "schedule_free" for r in queue)
        calls.append(({r.method for r in extra}, unfinished))
        queue += extra
    return {"done": [], "skipped": [], "failed": [], "unsupported": []}

  root = str(tmp_path / "overlap")
  lines = []
  code = bracket.run_rounds(make_sweep(), root, run_fn=held_back, max_rounds=5, log=lines.append)
  assert code == 0 and "every selected LR and offset is interior" in lines[-1]
  # Cosine and inverse-sqrt points started while Schedule-Free runs were still unfinished, and
  # no Schedule-Free point was proposed before its own runs had all finished.
  assert any({"cosine", "inverse_sqrt"} & methods and held for methods, held in calls)
  assert all("schedule_free" not in methods or held == 0 for methods, held in calls)
  strict = str(tmp_path / "strict")
  bracket.run_rounds(make_sweep(), strict, run_fn=finish, max_rounds=5, log=lambda _: None)
  assert set(bracket.read(root, make_sweep())) == set(bracket.read(strict, make_sweep()))


def test_an_unreadable_log_while_jobs_run_defers_to_the_end_of_the_round(tmp_path):
  root = str(tmp_path)
  lines, bad = [], {}

  def corrupt_then_refill(runs, root, refill):
    finish(runs, root)
    bad["run"] = next(r for r in runs if r.method == "constant")
    log = os.path.join(sc.workdir(root, bad["run"]), "eval.jsonl")
    os.remove(log)
    os.mkdir(log)  # a finished run's log that cannot be read
    assert refill() == []  # no exception with jobs still running, no points added
    return {"done": [], "skipped": [], "failed": [], "unsupported": []}

  with pytest.raises(OSError):  # raised once the launcher has no job left
    bracket.run_rounds(make_sweep(), root, run_fn=corrupt_then_refill, max_rounds=5,
                       log=lines.append)  # fmt: skip
  assert any(line.startswith("bracket: no new points while jobs run (") for line in lines)
  assert not os.path.exists(os.path.join(root, bracket.FILE))


def test_max_rounds_stops_and_says_what_was_not_added(tmp_path):
  lines = []
  bracket.run_rounds(make_sweep(), str(tmp_path), run_fn=finish, max_rounds=1, log=lines.append)
  assert lines[-1].startswith("bracket: --max_bracket_rounds=1 reached; not added:")
  assert len(bracket.read(str(tmp_path), make_sweep())) == 4  # the first round's points only


def test_bracket_json_round_trips_into_expand_with_stable_names(tmp_path):
  s = make_sweep()
  points = [
    bracket.Point("cosine", lr=0.0141, horizon=1.0),
    bracket.Point("constant", lr=bracket.grid_lr(0.01 * bracket.STEP)),
    bracket.Point("inverse_sqrt", offset=80.0),
  ]
  bracket.write(str(tmp_path), s, points)
  assert bracket.read(str(tmp_path), s) == points
  before = {r.name for r in sc.expand(s)}
  grown = bracket.load(s, str(tmp_path))
  added = sorted(r.name for r in sc.expand(grown) if r.name not in before)
  assert added == sorted(
    ["cosine_h1_lr0.0141_b0.95_s0", "constant_h4_lr0.0141_b0.95_s0"]
    + [f"inverse_sqrt_o80_h4_lr{lr:g}_b0.95_s0" for lr in GRID]
  )  # the cosine point at 1x only; the offset for every inverse-sqrt LR
  assert [r.name for r in bracket.extra_runs(s, points)] == [
    r.name for r in sc.expand(grown) if r.name not in before
  ]
  assert s.cosine.get("horizon_lrs", ()) == () and 0.0141 not in s.constant.lrs  # not mutated


def test_inverse_sqrt_points_are_single_runs_at_the_other_axis_selection(tmp_path):
  s = make_sweep()
  points = [
    bracket.Point("inverse_sqrt", lr=0.003, offset=80.0),  # an offset at the selected LR
    bracket.Point("inverse_sqrt", lr=0.0141, offset=40.0),  # an LR at the selected offset
    bracket.Point("inverse_sqrt", lr=0.01, offset=40.0),  # already on the grid: nothing
  ]
  bracket.write(str(tmp_path), s, points)
  assert bracket.read(str(tmp_path), s) == points
  grown = bracket.load(s, str(tmp_path))
  assert not bracket.present(s, points[0]) and bracket.present(grown, points[0])
  assert bracket.present(s, points[2])
  before = {r.name for r in sc.expand(s)}
  added = [r for r in sc.expand(grown) if r.name not in before]
  assert [r.name for r in added] == [
    "inverse_sqrt_o80_h4_lr0.003_b0.95_s0",
    "inverse_sqrt_o40_h4_lr0.0141_b0.95_s0",
  ]
  assert [dict(r.overrides)["opt.offset"] for r in added] == ["80", "40"]
  assert grown.inverse_sqrt.offsets == s.inverse_sqrt.offsets  # the grid itself is unchanged


def test_a_wsd_point_adds_its_constant_parent():
  s = make_sweep()
  s.wsd.enabled = True
  s.wsd.lrs = (0.003,)
  grown = bracket.apply(s, [bracket.Point("wsd", lr=0.00424)])
  assert grown.wsd.lrs == (0.003, 0.00424) and 0.00424 in grown.constant.lrs
  names = {r.name for r in sc.expand(grown)}
  assert {"constant_h4_lr0.00424_b0.95_s0", "wsd_h2_lr0.00424_b0.95_s0"} <= names


@pytest.mark.parametrize(
  "data, message",
  [
    ({"sweep": "brk", "points": [{"method": "constant", "lr": -0.1}]}, "lr=-0.1 is invalid"),
    ({"sweep": "brk", "points": [{"method": "constant", "lr": 0}]}, "lr=0 is invalid"),
    ({"sweep": "other", "points": []}, "written for sweep 'other'"),
    ({"sweep": "brk", "points": [{"method": "cosine", "lr": 0.1}]}, "horizon"),
    ({"sweep": "brk", "points": [{"method": "constant", "offset": 9.0}]}, "offset of inverse"),
    ({"sweep": "brk", "points": [{"method": "wsd", "lr": 0.1}]}, "enabled method"),
    ([1, 2], "'points' list"),
  ],
)
def test_bad_bracket_json_is_refused(data, message, tmp_path):
  with open(tmp_path / bracket.FILE, "w") as f:
    json.dump(data, f)
  with pytest.raises(ValueError, match=message):
    bracket.read(str(tmp_path), make_sweep())


def _main(argv, sweep, monkeypatch):
  monkeypatch.setattr(sc, "load_sweep", lambda spec: sweep)
  return launch.main(argv)


@pytest.mark.parametrize(
  "flags, message",
  [
    (["--bracket", "--print"], "--bracket does not combine with --print"),
    (["--bracket", "--status"], "does not combine with --status"),
    (["--bracket", "--only=cosine"], "does not combine with --only"),
    (["--max_bracket_rounds=2"], "without --bracket"),
    (["--bracket", "--jobs=1", "--max_bracket_rounds=0"], "expected >= 1"),
  ],
)
def test_flags_that_do_not_combine(flags, message, tmp_path, monkeypatch):
  root = tmp_path / "root"
  with pytest.raises(ValueError, match=message):
    _main(["--sweep=x", f"--root={root}", *flags], make_sweep(), monkeypatch)
  assert not root.exists()


def test_cli_prints_status_and_the_extra_commands(finished, monkeypatch, capsys):
  s, root = finished
  assert _main(["--sweep=x", f"--root={root}", "--bracket"], s, monkeypatch) == 0
  out = capsys.readouterr().out
  assert "cosine (tuned)" in out and "edge-high" in out
  assert "# 4 run(s) to add" in out  # 2 cosine, inverse-sqrt offset 80 at lr 0.003, Schedule-Free
  assert f"--workdir={os.path.join(root, 'cosine_h1_lr0.0141_b0.95_s0')}" in out
  assert not os.path.exists(os.path.join(root, bracket.FILE))  # printing writes nothing


def test_cli_corrupt_bracket_json_is_one_line_and_exit_2(tmp_path):
  (tmp_path / bracket.FILE).write_text("{not json")
  before = sorted(os.listdir(tmp_path))
  p = subprocess.run(
    [sys.executable, "-m", "anytime.sweeps", "--sweep=smoke", f"--root={tmp_path}", "--status"],
    capture_output=True,
    text=True,
  )
  assert p.returncode == 2 and p.stdout == ""
  assert p.stderr.count("\n") == 1 and "bracket.json cannot be read as JSON" in p.stderr
  assert sorted(os.listdir(tmp_path)) == before


def test_figure2_trajectories_are_bracketed_in_a_sweep_with_headline_seeds(finished, tmp_path):
  s, root = finished
  rows = _rows(s, root)
  assert not [k for k in rows if "(Figure 2)" in k[0]]  # no headline seeds: no trajectory rows
  s = bracket.apply(s, [])
  s.headline.seeds = (1,)
  rows = _rows(s, root)
  # The constant optimum 0.003 is inside (0.001, 0.01) at every horizon: so is its trajectory.
  const = rows[("constant LR + EMA (Figure 2)", 4, "lr")]
  assert (const.selected, const.low, const.high, const.status, const.adds) == (
    0.003, 0.001, 0.01, "interior", ()
  )  # fmt: skip
  # Inverse-sqrt: LR interior, offset at the top of (10, 20, 40) as for its per-horizon picks.
  assert rows[("inverse-sqrt LR + EMA (Figure 2)", 4, "lr")].status == "interior"
  off = rows[("inverse-sqrt LR + EMA (Figure 2)", 4, "offset")]
  assert (off.selected, off.status, off.adds) == (40.0, "edge-high", (bracket.Point(
    "inverse_sqrt", lr=0.003, offset=80.0),))  # fmt: skip
  # Only the LR of the selected trajectory counts: with 0.01 gone, 0.003 sits on the top edge.
  s.constant.lrs = (0.001, 0.003)
  runs = sc.expand(s)
  full, missing = tmp_path / "full", tmp_path / "missing"
  for r in runs:
    os.makedirs(sc.workdir(str(full), r).rsplit(os.sep, 1)[0], exist_ok=True)
    os.symlink(sc.workdir(root, r), sc.workdir(str(full), r))
    if r is not runs[0]:  # the first run, a cosine run, not started in this root
      os.makedirs(str(missing), exist_ok=True)
      os.symlink(sc.workdir(root, r), sc.workdir(str(missing), r))
  got = {(r.label, r.axis): r for r in bracket.status(s, runs, str(full))}
  const = got[("constant LR + EMA (Figure 2)", "lr")]
  assert (const.selected, const.status, const.adds) == (
    0.003, "edge-high", (bracket.Point("constant", lr=0.00424),)
  )  # fmt: skip
  # A cosine run unfinished: the trajectories wait (their rule reads the tuned cosine).
  assert runs[0].method == "cosine"
  got = bracket.status(s, runs, str(missing))
  assert {r.status for r in got if "(Figure 2)" in r.label} == {"waiting"}
