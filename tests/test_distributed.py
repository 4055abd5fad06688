"""Data-parallel training on CPU: 2 real processes, gloo, loopback only (127.0.0.1, a free port).

- Equivalence: one torchrun launch trains every rule through ``tests/dist_worker.py`` (each rank runs a
  :class:`~bioleaf.training.trainer.Trainer` with ``setup_parallel(True, "cpu")`` and saves its tensors); the
  ranks must hold bitwise identical tensors, and match a single-process run with the same global
  batch (max abs difference <= 1e-5; every rule sums its batch in float64 (bptt with ``--grad-sums
  float64``), so the sums do not depend on the split). Uneven and empty shards included. Only rank 0 writes.
- Stop and resume: SIGTERM to one rank stops *both* after the same batch (rank 0 writes the
  checkpoint, exit 130); ``--resume`` under torchrun then ends exactly where an uninterrupted
  single-process run ends.
- Failures: ``--distributed`` without a launcher, bad timeouts, and a rank that is killed (SIGKILL)
  or frozen (SIGSTOP): the survivor exits 1 with a one-line message, within the collective timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bioleaf.training import checkpoint as ckpt
from bioleaf.config import TrainConfig
from bioleaf.data import load_dataset
from bioleaf.errors import DataError, DivergenceError
from bioleaf.model.circuit import CircuitParams
from bioleaf.training.distributed import LAUNCH_VARS, TIMEOUT_ENV, BatchFigures, Parallel
from bioleaf.training.stops import Interrupted
from bioleaf.training.trainer import Trainer

WORKER = Path(__file__).with_name("dist_worker.py")
BASE = dict(dataset="digits", arch="64-64-10", batch_size=32, epochs=1, seed=0)
RUNS = {  # 1293 training digits: 41 batches, the last of 13 rows (shards of 7 and 6)
    "bioleaf": dict(rule="bioleaf", self_predict_batches=2),  # W learns from batch 3 on
    "stbp": dict(rule="stbp"),
    "bptt": dict(rule="bptt", grad_sums="float64"),
    "bptt-empty-shard": dict(rule="bptt", grad_sums="float64", limit=100, batch_size=89),  # 90 samples: a 1-row batch, rank 1 idle
    "bioleaf-empty-shard": dict(rule="bioleaf", limit=100, batch_size=89, self_predict_batches=0),
    "bioleaf-learned-feedback": dict(rule="bioleaf", self_predict_batches=2, circuit=CircuitParams(feedback="learned")),
}
TOLERANCE = 1e-5
RUN_FILES = {"config.json", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "summary.json"}
CLI_TRAIN = ["train", "--rule", "stbp", "--dataset", "digits", "--arch", "64-64-10", "--batch-size", "32",
             "--limit", "300", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and k != TIMEOUT_ENV}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def torchrun(*args: str, port: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={port}", *args]


class Ranks:
    """Rank processes started by hand with the environment torchrun would give them, so a test can
    signal one of them; every process still running at the end is killed."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.procs, self.logs = tmp_path, [], []

    def start(self, args: list[str], world: int = 2, **env: str) -> None:
        port = str(free_port())
        for rank in range(world):
            log = self.tmp_path / f"rank{rank}-{len(self.procs)}.err"
            self.logs.append(log)
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "bioleaf", *args], stdout=subprocess.DEVNULL, stderr=log.open("w"),
                env=child_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                              LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **env)))

    def wait(self, rank: int, timeout: float) -> tuple[int, str]:
        code = self.procs[rank].wait(timeout=timeout)
        return code, self.logs[rank].read_text()

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def ranks(tmp_path):
    r = Ranks(tmp_path)
    yield r
    r.kill_all()


def wait_for(path: Path, ranks: Ranks, timeout: float = 60.0) -> None:
    """Until ``path`` exists (training is under way on every rank)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        dead = [(i, p.returncode) for i, p in enumerate(ranks.procs) if p.poll() is not None]
        assert not dead and time.monotonic() < deadline, (dead, [log.read_text()[-2000:] for log in ranks.logs])
        time.sleep(0.05)


def config(name: str) -> TrainConfig:
    return TrainConfig(**{**BASE, **RUNS[name]}).validate()


# ------------------------------------------------------------------ equivalence
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every run of RUNS twice: on 2 ranks (one torchrun launch, in the background) and in this process."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("dist")
    for name in RUNS:
        for sub in ("single", "run0", "run1"):
            (out / name / sub).mkdir(parents=True)
    runs = json.dumps({name: config(name).to_json() for name in RUNS})
    log = (out / "torchrun.log").open("w")
    proc = subprocess.Popen(torchrun(str(WORKER), str(out), runs, port=free_port()), stdout=log,
                            stderr=subprocess.STDOUT, env=child_env())
    try:
        single = {}
        for name in RUNS:
            cfg = config(name)
            data = load_dataset(cfg.dataset, limit=cfg.limit, val_fraction=cfg.val_fraction)
            trainer = Trainer(cfg, data, out / name / "single", progress=False)
            summary = trainer.run()
            single[name] = ({k: v.detach().clone() for k, v in trainer.rule.tensors().items()}, summary)
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert code == 0, (out / "torchrun.log").read_text()[-4000:]
    return out, single


@pytest.mark.parametrize("name", RUNS)
def test_ranks_hold_bitwise_identical_tensors(trained, name):
    out, _ = trained
    rank0, rank1 = load_file(out / name / "rank0.safetensors"), load_file(out / name / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


@pytest.mark.parametrize("name", RUNS)
def test_two_ranks_match_one_process_with_the_same_global_batch(trained, name):
    out, single = trained
    reference, ref_summary = single[name]
    tensors = load_file(out / name / "rank0.safetensors")
    summary = json.loads((out / name / "rank0.json").read_text())
    assert summary["world_size"] == 2 and ref_summary["world_size"] == 1
    diff = max(float((tensors[k].double() - reference[k].double()).abs().max()) for k in reference)
    print(f"[distributed] {name}: max |W(2 ranks) - W(1 process)| = {diff:.3g}")
    assert diff <= TOLERANCE
    n_test = len(load_dataset("digits").test_y)
    assert abs(summary["test_accuracy"] - ref_summary["test_accuracy"]) <= 1.5 / n_test
    two, one = [json.loads((out / name / sub / "metrics.jsonl").read_text().splitlines()[-1]) for sub in ("run0", "single")]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-3)  # summed over ranks (an idle one adds 0)
    assert two["train_accuracy"] == pytest.approx(one["train_accuracy"], abs=0.005)


@pytest.mark.parametrize("name", RUNS)
def test_only_rank_0_writes(trained, name):
    out, _ = trained
    assert {p.name for p in (out / name / "run0").iterdir()} == RUN_FILES
    assert list((out / name / "run1").iterdir()) == []


# ------------------------------------------------------------- stop and resume
def test_sigterm_to_one_rank_stops_every_rank_and_resume_matches_one_process(ranks, tmp_path, run_cli):
    out = tmp_path / "run"
    ranks.start(CLI_TRAIN + ["--epochs", "1000", "--distributed", "--out", str(out)])
    wait_for(out / "checkpoint.safetensors", ranks)  # first epoch done: both ranks are in the loop
    ranks.procs[1].send_signal(signal.SIGTERM)
    (code0, err0), (code1, err1) = ranks.wait(0, 60), ranks.wait(1, 60)
    assert (code0, code1) == (130, 130), (err0, err1)
    where = [re.search(r"stopped at epoch (\d+), batch (\d+)", err) for err in (err0, err1)]
    assert where[0] and where[1] and where[0].groups() == where[1].groups(), (err0, err1)
    assert err1.startswith("bioleaf train: error: SIGTERM:") and "another rank" in err0
    assert len(err0.strip().splitlines()) == 1
    _, meta = ckpt.load_tensors(out / "checkpoint.safetensors")
    epoch, batch = map(int, where[0].groups())
    assert (meta["progress"]["epoch"], meta["progress"]["batch"]) == (epoch - 1, batch)

    epochs = str(epoch + 1)
    resumed = subprocess.run(torchrun("-m", "bioleaf", *CLI_TRAIN, "--epochs", epochs, "--distributed", "--resume",
                                      "--out", str(out), port=free_port()),
                             capture_output=True, text=True, env=child_env(), timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    code, _, err = run_cli(*CLI_TRAIN, "--epochs", epochs, "--out", str(tmp_path / "single"))
    assert code == 0, err
    two, _ = ckpt.load_tensors(out / "model.safetensors")
    one, _ = ckpt.load_tensors(tmp_path / "single" / "model.safetensors")
    for key in one:
        assert float((two[key] - one[key]).abs().max()) <= TOLERANCE, key
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == epoch + 1


def fake_rank(rank: int, *, peer: list[float] | None = None, stop: bool = False, diverged: bool = False) -> Parallel:
    """Rank ``rank`` of 2, alone in this process. White box: the other rank adds nothing to any
    all-reduce, except its row ``peer`` to a ``Parallel.gather`` table of that width, and its ``stop`` and
    ``diverged`` to the per-batch :class:`BatchFigures`."""
    others = BatchFigures(loss_sum=0.0, correct=0, samples=0, stop=int(stop), diverged=int(diverged)).tensor()

    def all_reduce(tensors):
        for t in tensors:
            if peer is not None and t.shape == (2, len(peer)) and t.dtype == torch.float64:
                t[1 - rank] = torch.tensor(peer, dtype=torch.float64)
            if t.shape == others.shape and t.dtype == torch.float64:
                t += others
    return Parallel(rank=rank, world_size=2, all_reduce=all_reduce)


def test_rank_1_never_writes_even_with_checkpoints_and_a_stop(tmp_path, digits):
    cfg = TrainConfig(**{**BASE, "rule": "stbp", "epochs": 2}).validate()
    out = tmp_path / "run1"
    out.mkdir()
    assert Trainer(cfg, digits, out, checkpoint_every=1, progress=False, parallel=fake_rank(1)).run()["world_size"] == 2
    trainer = Trainer(cfg, digits, out, checkpoint_every=1, progress=False, parallel=fake_rank(1, stop=True))
    with pytest.raises(Interrupted, match="^stop requested on another rank: stopped at epoch 1, batch 1;"):
        trainer.run()
    assert list(out.iterdir()) == []


def test_a_divergence_on_another_rank_stops_this_one_too(tmp_path, digits):
    cfg = TrainConfig(**{**BASE, "rule": "stbp"}).validate()
    trainer = Trainer(cfg, digits, tmp_path, progress=False, parallel=fake_rank(0, diverged=True))
    with pytest.raises(DivergenceError, match="^rule stbp: non-finite values on another rank at epoch 1, batch 1 "):
        trainer.run()


@pytest.mark.parametrize("peer, message", [([1.0, 0.0], r"rank\(s\) 0 could not load"),
                                           ([0.0, 12345.0], r"rank\(s\) 1 loaded a different .* than rank 0")])
def test_resume_stops_every_rank_unless_all_loaded_the_same_checkpoint(tmp_path, digits, peer, message):
    cfg = TrainConfig(**{**BASE, "rule": "stbp", "limit": 100}).validate()
    Trainer(cfg, digits, tmp_path, progress=False).run()
    trainer = Trainer(cfg, digits, tmp_path, progress=False, parallel=fake_rank(1, peer=peer))
    with pytest.raises(DataError, match=message):
        trainer.load_checkpoint()


def test_other_ranks_stop_when_rank_0_refuses_the_output_directory(run_cli, monkeypatch, tmp_path):
    monkeypatch.setattr("bioleaf.training.distributed.setup_parallel", lambda *args: fake_rank(1, peer=[1.0]))
    code, _, err = run_cli(*CLI_TRAIN, "--epochs", "1", "--distributed", "--out", str(tmp_path / "run"))
    assert code == 2 and "rejected by rank 0" in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # only rank 0 creates --out


# ---------------------------------------------------------------------- failures
@pytest.mark.parametrize("how, victim", [(signal.SIGKILL, 1), (signal.SIGSTOP, 0)], ids=["killed", "frozen"])
def test_a_lost_rank_ends_the_others_with_one_line_within_the_timeout(ranks, tmp_path, how, victim):
    timeout = 3
    out = tmp_path / "run"
    ranks.start(CLI_TRAIN + ["--epochs", "1000", "--checkpoint-every", "2", "--distributed", "--out", str(out)],
                **{TIMEOUT_ENV: str(timeout)})
    wait_for(out / "checkpoint.safetensors", ranks)
    ranks.procs[victim].send_signal(how)
    start = time.monotonic()
    code, err = ranks.wait(1 - victim, timeout + 30)
    elapsed = time.monotonic() - start
    assert code == 1, err
    assert elapsed < timeout + 10
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bioleaf train: error: distributed: rank"), err
    assert "lost contact" in lines[0] and f"timeout {timeout}s" in lines[0]


def test_distributed_without_a_launcher_is_a_usage_error(run_cli, monkeypatch, tmp_path):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    code, _, err = run_cli(*CLI_TRAIN, "--epochs", "1", "--distributed", "--out", str(tmp_path / "run"))
    assert code == 2
    assert err.count("\n") == 1 and "no launcher environment" in err and "torchrun --nproc_per_node" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, env, message", [
    (["--dist-timeout", "0", "--distributed"], None, "--dist-timeout: expected a finite number of seconds > 0"),
    (["--dist-timeout", "5"], None, "--dist-timeout: only meaningful with --distributed"),
    (["--distributed"], "soon", f"{TIMEOUT_ENV}: expected a number of seconds, got 'soon'"),
])
def test_bad_timeouts_are_usage_errors(run_cli, monkeypatch, tmp_path, flags, env, message):
    if env is not None:
        monkeypatch.setenv(TIMEOUT_ENV, env)
    code, _, err = run_cli(*CLI_TRAIN, "--epochs", "1", *flags, "--out", str(tmp_path / "run"))
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_batch_figures_are_summed_over_ranks_field_by_field():
    ranks = [BatchFigures(loss_sum=1.5, correct=3, samples=7), BatchFigures(loss_sum=0.25, correct=2, samples=6, stop=1)]
    summed = ranks[0].tensor() + ranks[1].tensor()
    assert summed.dtype == torch.float64
    assert BatchFigures.from_tensor(summed) == BatchFigures(loss_sum=1.75, correct=5, samples=13, stop=1, diverged=0)
