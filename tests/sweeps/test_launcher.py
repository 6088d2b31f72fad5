"""The launcher's run / skip / resume / dependency logic, with a fake trainer (no JAX)."""

import json
import os
import shlex
import socket
import subprocess
import sys
import threading

import pytest

from anytime import optim
from anytime.sweeps import common as sc
from anytime.sweeps import launch as sweep
from anytime.sweeps import listing, pin, runlogs

FAKE = "tests.sweeps.fake_trainer"
CONSTANT = "constant_h2_lr0.003_b0.95_s0"
WSD1, WSD2 = "wsd_h1_lr0.003_b0.95_s0", "wsd_h2_lr0.003_b0.95_s0"
SF = "schedule_free_h2_lr0.003_b0.95_s0"


@pytest.fixture(scope="module")
def runs():
  # As if the trainer could not run Schedule-Free, so that the launcher's handling of
  # runs the trainer cannot run yet stays covered (every method is runnable today).
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(optim, "SCHEDULES", tuple(x for x in optim.SCHEDULES if x != "schedule_free"))
    sc._plan.cache_clear()  # planning is cached per run; keep the pretend out of later tests
    runs = sc.expand(sc.load_sweep("smoke"))
  sc._plan.cache_clear()
  return runs


def _launch(runs, root, crash=""):
  env = {**os.environ, "FAKE_CRASH": crash}
  lines = []
  outcome = sweep.run_local(
    runs, root, jobs=2, python=sys.executable, module=FAKE, env=env, poll=0.02, log=lines.append
  )
  return outcome, lines


def test_refill_is_asked_when_a_slot_would_idle_and_its_runs_are_run(runs, tmp_path):
  root = str(tmp_path)
  first, extra = [r for r in runs if r.supported and r.parent is None][:2]
  asked = []  # the runs done each time refill was asked

  def refill():
    asked.append(sorted(r.name for r in runs if sc.run_state(root, r) == "done"))
    return [extra] if len(asked) == 1 else []

  outcome = sweep.run_local(
    [first], root, jobs=2, python=sys.executable, module=FAKE, poll=0.02, log=lambda _: None,
    refill=refill,
  )  # fmt: skip
  assert outcome["done"] == [first.name, extra.name] and not outcome["failed"]
  assert asked == [[first.name], sorted([first.name, extra.name])]  # after each run ended
  assert sc.run_state(root, extra) == "done"
  # After a failed run it is not asked: the launcher stops growing the sweep.
  crashed = next(r for r in runs if r.supported and r.parent is None and r not in (first, extra))
  env = {**os.environ, "FAKE_CRASH": f"{crashed.name}:1"}
  outcome = sweep.run_local(
    [crashed], str(tmp_path / "crash"), jobs=2, python=sys.executable, module=FAKE, env=env,
    poll=0.02, log=lambda _: None, refill=refill,
  )  # fmt: skip
  assert outcome["failed"] == [crashed.name] and len(asked) == 2


def test_runs_all_then_skips_finished_runs(runs, tmp_path):
  root = str(tmp_path)
  outcome, lines = _launch(runs, root)
  supported = sorted(r.name for r in runs if r.supported)
  assert sorted(outcome["done"]) == supported and outcome["unsupported"] == [SF]
  assert not outcome["failed"] and not os.path.exists(os.path.join(root, SF))
  starts = [line.split()[1] for line in lines if line.startswith("start")]
  assert starts.index(CONSTANT) < min(starts.index(WSD1), starts.index(WSD2))
  for r in runs:
    if r.supported:
      assert sc.run_state(root, r) == "done"
      assert not os.path.exists(os.path.join(root, r.name, sc.LOCK))
  assert listing.progress(root, runs, jobs=1, peak=1e12, mfu=0.5).startswith(
    "progress: 9 done, 0 running, 0 left (0 partial), 1 not runnable; 100.0% of the FLOPs done"
  )
  again, lines = _launch(runs, root)
  assert sorted(again["skipped"]) == supported and not again["done"]
  assert not [line for line in lines if line.startswith("start")]


def test_interrupted_run_resumes_and_its_branches_wait(runs, tmp_path):
  root = str(tmp_path)
  # The constant run dies after step 20 (of 40): the 1x branch (from step 18) can run, the 2x
  # branch (from step 36) cannot.
  outcome, lines = _launch(runs, root, crash=f"{CONSTANT}:20")
  assert sorted(outcome["failed"]) == [CONSTANT, WSD2]
  assert WSD1 in outcome["done"]
  assert any(f"{WSD2}: {CONSTANT} has no checkpoint at step 36" in x for x in lines)
  by = {r.name: r for r in runs}
  assert sc.run_state(root, by[CONSTANT]) == "partial"
  assert sc.progress_step(root, by[CONSTANT]) == 20
  assert sc.run_state(root, by[WSD2]) == "todo"
  total = sum(r.train_flops for r in runs if r.supported)
  left = (20 + 4) * 128 * runs[0].flops_per_token  # constant's last 20 steps + the 2x branch
  summary = listing.progress(root, runs, jobs=1, peak=1e12, mfu=0.5)
  assert summary.startswith(
    f"progress: 7 done, 0 running, 2 left (1 partial), 1 not runnable; "
    f"{1 - left / total:.1%} of the FLOPs done"
  )
  outcome, _ = _launch(runs, root)
  assert sorted(outcome["done"]) == [CONSTANT, WSD2] and not outcome["failed"]
  with open(os.path.join(root, CONSTANT, "resumes.txt")) as f:
    assert f.read().split() == ["20"]  # the trainer resumed from its workdir, same command


def test_running_is_detected_from_a_live_lock(runs, tmp_path):
  run = next(r for r in runs if r.name == CONSTANT)
  path = tmp_path / run.name
  path.mkdir()
  (path / sc.LOCK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
  assert sc.run_state(str(tmp_path), run) == "running"
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (path / sc.LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
  assert sc.run_state(str(tmp_path), run) == "todo"


def test_a_lock_is_live_while_its_launcher_or_its_trainer_is(runs, tmp_path):
  run, root = next(r for r in runs if r.name == CONSTANT), str(tmp_path)
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  here = socket.gethostname()
  for launcher_pid, trainer_pid, state in [
    (os.getpid(), None, "running"),  # taken, trainer not started yet
    (dead.pid, os.getpid(), "running"),  # launcher killed, its trainer still writing
    (dead.pid, dead.pid, "todo"),  # both gone: stale
  ]:
    lock = {"host": here, "launcher_pid": launcher_pid, "pid": trainer_pid}
    os.makedirs(tmp_path / CONSTANT, exist_ok=True)
    (tmp_path / CONSTANT / sc.LOCK).write_text(json.dumps(lock))
    assert sc.run_state(root, run) == state
    assert runlogs.claim(root, run) is (state == "todo")  # a stale lock is taken over
  taken = json.loads((tmp_path / CONSTANT / sc.LOCK).read_text())
  assert taken["launcher_pid"] == os.getpid() and "pid" not in taken
  runlogs.record_trainer(root, run, 12345)
  assert json.loads((tmp_path / CONSTANT / sc.LOCK).read_text())["pid"] == 12345


def test_launchers_sharing_a_root_start_each_run_once(runs, tmp_path):
  """Two launchers given the same runs at the same time: each run is started by exactly one."""
  root = str(tmp_path)
  todo = [r for r in runs if r.supported]
  outcomes = [None, None]

  def launch(i):
    outcomes[i] = sweep.run_local(
      todo, root, jobs=1, python=sys.executable, module=FAKE, poll=0.01, log=lambda _: None
    )

  threads = [threading.Thread(target=launch, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  done = [set(o["done"]) for o in outcomes]
  assert not done[0] & done[1] and not any(o["failed"] for o in outcomes)
  for r in todo:
    with open(os.path.join(root, r.name, "launcher.log")) as f:
      starts = [line for line in f if line.startswith("# 2") and "-m " in line]
    assert len(starts) <= 1, (r.name, starts)
    assert (r.name in done[0] | done[1]) == (len(starts) == 1)
  # What one launcher skipped (branches of a run the other held) the next launch finishes.
  outcome, _ = _launch(todo, root)
  assert not outcome["failed"] and all(sc.run_state(root, r) == "done" for r in todo)
  assert not os.path.exists(os.path.join(root, todo[0].name, sc.LOCK))


def test_branches_of_a_run_running_elsewhere_are_skipped(runs, tmp_path):
  root = str(tmp_path)
  os.makedirs(tmp_path / CONSTANT)
  lock = {"pid": os.getpid(), "host": socket.gethostname()}
  (tmp_path / CONSTANT / sc.LOCK).write_text(json.dumps(lock))
  outcome, lines = _launch([r for r in runs if r.method in ("constant", "wsd")], root)
  assert sorted(outcome["skipped"]) == [CONSTANT, WSD1, WSD2] and not outcome["done"]
  assert f"skip {WSD1}: its parent {CONSTANT} runs elsewhere; launch again later" in lines


def test_parent_ready_needs_the_branch_checkpoint(runs, tmp_path):
  wsd = next(r for r in runs if r.name == WSD2)
  assert not sc.parent_ready(str(tmp_path), wsd)
  os.makedirs(tmp_path / CONSTANT / "checkpoints" / "20")
  assert not sc.parent_ready(str(tmp_path), wsd)
  os.makedirs(tmp_path / CONSTANT / "checkpoints" / "36")
  assert sc.parent_ready(str(tmp_path), wsd)


def test_print_mode_phases_and_skips(runs, tmp_path):
  root = str(tmp_path)
  text = listing.print_commands(runs, root, "py")
  lines = text.splitlines()
  assert lines[0] == f"# not runnable by the trainer yet (schedule_free): {SF}"
  phase2 = lines.index("# phase 2, after the constant runs have passed their branch steps:")
  assert len(lines) == 1 + 7 + 1 + 2 and phase2 == 8
  argv = shlex.split(lines[-1])
  assert argv[:3] == ["py", "-m", "anytime.lm"]  # runs from any directory: no cd
  assert f"--config.init_from={root}/{CONSTANT}" in argv
  assert "--config.opt.averages=('pema6.25', 'pema25')" in argv  # one argument after quoting
  # A finished run is left out.
  done = next(r for r in runs if r.name == "cosine_h1_lr0.01_b0.95_s0")
  os.makedirs(tmp_path / done.name)
  (tmp_path / done.name / "eval.jsonl").write_text(
    json.dumps({"kind": "header", "total_steps": 20, "steps_per_chinchilla": 20})
    + "\n"
    + json.dumps({"kind": "eval", "step": 20, "tokens": 2560, "loss": {"raw": 3.0}})
    + "\n"
  )
  assert done.name not in listing.print_commands(runs, root, "py")
  files = listing.write_array_files(runs, root, "py", str(tmp_path / "jobs.txt"))
  assert files == [f"{tmp_path}/jobs.txt: 6 tasks", f"{tmp_path}/jobs.txt.wsd: 2 tasks"]
  assert len((tmp_path / "jobs.txt").read_text().splitlines()) == 6


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--jobs=0"], r"--jobs=0 is invalid: expected an integer >= 1"),
    (["--mfu=1.5"], r"--mfu=1.5 is invalid: expected a fraction in \(0, 1\]"),
    (["--peak_tflops=0"], r"--peak_tflops=0.0 is invalid"),
    (["--tokens_per_s=-1"], r"--tokens_per_s=-1.0 is invalid: expected >= 0"),
    (["--only=nomatch"], r"--only='nomatch' matches none of the sweep's run names"),
    (["--only=(("], r"--only='\(\(' is invalid: not a regular expression"),
  ],
)
def test_bad_launcher_input_fails_before_writing(argv, message, tmp_path):
  root = tmp_path / "root"
  with pytest.raises(ValueError, match=message):
    sweep.main(["--sweep=smoke", f"--root={root}", *argv])
  assert not root.exists()


def test_dry_listing_of_the_smoke_sweep_by_hand(runs, capsys):
  sweep.main(["--sweep=smoke", "--dry", "--summary_only", "--mfu=0.5", "--peak_tflops=1"])
  out = capsys.readouterr().out
  f = runs[0].flops_per_token
  # cosine: (1 + 1 + 1) runs of 20 steps + 2 of 40 = 140 steps x 128 tokens
  assert f"{'cosine':<14} {5:>5} {'17.9k':>10} {140 * 128 * f:>12.3e}" in out
  assert f"{'wsd':<14} {2:>5} {'768':>10} {6 * 128 * f:>12.3e}" in out
  total = (140 + 40 + 40 + 6 + 40) * 128 * f
  assert f"{'total':<14} {10:>5} {'34k':>10} {total:>12.3e}" in out
  assert "(50% MFU x 1 TFLOP/s peak)" in out
  sweep.main(["--sweep=smoke", "--dry", "--summary_only", "--tokens_per_s=128"])
  runnable = (140 + 40 + 40 + 6 + 40) * 128  # every run, Schedule-Free included
  out = capsys.readouterr().out
  assert f"at 128 tokens/s (one job): {runnable / 128 / 3600:.2f} h of training for the 10" in out


def test_core_slots_split_the_cores_between_jobs(monkeypatch):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
  assert sweep.core_slots(2, "auto") == [(0, 1), (2, 3)]
  assert sweep.core_slots(4, "on") == [(0,), (1,), (2,), (3,)]
  assert sweep.core_slots(1, "auto") is None and sweep.core_slots(5, "auto") is None
  assert sweep.core_slots(2, "off") is None
  with pytest.raises(ValueError, match=r"--pin=on with --jobs=5: only 4 core\(s\)"):
    sweep.core_slots(5, "on")


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda p: ())(0)) < 2, reason="1 core")
def test_pinned_jobs_each_run_on_their_own_core(runs, tmp_path):
  root = str(tmp_path)
  env = {**os.environ, "FAKE_CRASH": ""}
  outcome = sweep.run_local(
    runs, root, jobs=2, python=sys.executable, module=FAKE, env=env, poll=0.02, log=print,
    pin="on",
  )  # fmt: skip
  assert not outcome["failed"]
  slots = {",".join(map(str, c)) for c in sweep.core_slots(2, "on")}
  seen = {(tmp_path / n / "cores.txt").read_text() for n in outcome["done"]}
  assert seen <= slots and len(seen) == 2  # both slots used, never all cores


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pin_execs_the_program_on_the_cores_with_the_same_pid():
  core = min(os.sched_getaffinity(0))
  probe = "import os; print(os.getpid(), *sorted(os.sched_getaffinity(0)))"
  cmd = [sys.executable, "-m", "anytime.sweeps.pin", str(core), sys.executable, "-c", probe]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
  out, _ = proc.communicate()
  assert out.split() == [str(proc.pid), str(core)]  # exec: the launcher waits on the trainer
  for bad in ("", "a,1", "-1"):
    with pytest.raises(ValueError, match=f"cores={bad!r} is invalid: expected comma-separated"):
      pin.parse_cores(bad)


def test_set_reaches_every_run_and_a_bad_field_is_named(tmp_path):
  root = tmp_path / "root"
  with pytest.raises(ValueError, match=r"sweep.lm_overrides='nosuch=1' .* no field 'nosuch'"):
    sweep.main(["--sweep=smoke", f"--root={root}", "--print", "--set", "nosuch=1"])
  assert not root.exists()
  s = sc.load_sweep("smoke")
  s.lm_overrides = (*s.lm_overrides, "opt.clip=0.5")
  assert all(dict(r.overrides)["opt.clip"] == "0.5" for r in sc.expand(s))


def test_fig2_without_its_data_is_refused_before_writing(tmp_path):
  root = tmp_path / "root"
  with pytest.raises(ValueError, match=r"data.path='' is invalid: the sweep trains on pre-tok"):
    sweep.main(["--sweep=fig2", f"--root={root}", "--jobs=2"])
  assert not root.exists()


def _read(path):
  with open(path) as f:
    return f.read()


def test_write_atomic_replaces_whole_or_keeps_the_old_file(tmp_path):
  path = str(tmp_path / "headline.json")
  runlogs.write_atomic(path, "old\n")
  # Another launcher's temporary of the same file (same directory, other pid) is not ours.
  other = f"{path}.{os.getpid() + 1}.tmp"
  with open(other, "w") as f:
    f.write("theirs")

  with pytest.raises(TypeError):  # the write fails after the temporary was opened
    runlogs.write_atomic(path, b"new")  # type: ignore[arg-type]
  assert _read(path) == "old\n"
  assert sorted(os.listdir(tmp_path)) == sorted(["headline.json", os.path.basename(other)])
  assert _read(other) == "theirs"

  runlogs.write_atomic(path, "new\n")
  assert _read(path) == "new\n"
  assert sorted(os.listdir(tmp_path)) == sorted(["headline.json", os.path.basename(other)])
