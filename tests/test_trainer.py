"""Trainer: run artifacts, determinism, exact resume, and `siger evaluate` reproducing metrics."""

import json
import shutil

import pytest
import yaml

from siger.cli import main
from siger.config import ConfigError, build_config
from siger.train.trainer import Trainer, load_data

FAST = {"batch_size": "4", "patience": "100", "progress": "false", "knn_k": "2", "cooc_k": "2"}


def _cfg(tiny_dir, model, **kw):
    ov = dict(FAST, data_dir=str(tiny_dir), topk="1,2,5")
    ov["valid_metric"] = "recall@5"
    if model == "LightGCN":
        ov.pop("knn_k"), ov.pop("cooc_k")
    ov.update({k: str(v) for k, v in kw.items()})
    return build_config(model, "tiny", ov)


def _fit(cfg, out, resume=False):
    return Trainer(cfg, load_data(cfg), out, log=lambda s: None).fit(resume=resume)


@pytest.mark.parametrize("model", ["LightGCN", "SIGER"])
def test_run_folder_artifacts(tiny_dir, tmp_path, model):
    out = tmp_path / "run"
    res = _fit(_cfg(tiny_dir, model, epochs=3), out)
    for f in ("config.yaml", "metrics.json", "log.jsonl", "curves.png", "model.pt", "checkpoint.pt"):
        assert (out / f).exists(), f
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [0, 1, 2]
    assert all("bpr" in x["loss"] and "valid" in x and x["train_seconds"] > 0 for x in lines)
    m = json.loads((out / "metrics.json").read_text())
    assert m["best_epoch"] == res["best_epoch"] and set(m["test"]) >= {"recall@5", "ndcg@5", "precision@5", "map@5"}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["model"] == model and saved["train"]["batch_size"] == 4
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_run_and_other_seed_differs(tiny_dir, tmp_path):
    a = _fit(_cfg(tiny_dir, "SIGER", epochs=2), tmp_path / "a")
    b = _fit(_cfg(tiny_dir, "SIGER", epochs=2), tmp_path / "b")
    c = _fit(_cfg(tiny_dir, "SIGER", epochs=2, seed=1), tmp_path / "c")
    la = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if "seconds" not in k}  # noqa: E731
    assert [strip(x) for x in la] == [strip(x) for x in lb]
    assert a["test"] == b["test"]
    lc = (tmp_path / "c" / "log.jsonl").read_text().splitlines()
    assert strip(la[0])["loss"] != strip(lc[0])["loss"]
    del c


@pytest.mark.parametrize("model", ["LightGCN", "SIGER"])
def test_resume_continues_exactly(tiny_dir, tmp_path, model):
    full = _fit(_cfg(tiny_dir, model, epochs=5), tmp_path / "full")
    _fit(_cfg(tiny_dir, model, epochs=2), tmp_path / "part")  # "killed" after epoch 1
    resumed = _fit(_cfg(tiny_dir, model, epochs=5), tmp_path / "part", resume=True)
    read = lambda p: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if "seconds" not in k} for x in p.read_text().splitlines()
    ]
    assert read(tmp_path / "part" / "log.jsonl") == read(tmp_path / "full" / "log.jsonl")
    assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]


def test_resume_refuses_a_different_config(tiny_dir, tmp_path):

    _fit(_cfg(tiny_dir, "LightGCN", epochs=1), tmp_path / "r")
    with pytest.raises(ConfigError, match=r"learning_rate: saved 0\.001, now 0\.01"):
        _fit(_cfg(tiny_dir, "LightGCN", epochs=2, learning_rate=0.01), tmp_path / "r", resume=True)


def test_resume_accepts_another_spelling_of_the_same_data_folder(tiny_dir, tmp_path, monkeypatch):

    _fit(_cfg(tiny_dir, "LightGCN", epochs=1), tmp_path / "r")  # data_dir saved as an absolute path
    monkeypatch.chdir(tiny_dir.parent)
    (tmp_path / "link").symlink_to(tiny_dir)
    res = _fit(_cfg(tiny_dir, "LightGCN", epochs=2, data_dir=tiny_dir.name), tmp_path / "r", resume=True)
    assert res["epochs_run"] == 2
    res = _fit(_cfg(tiny_dir, "LightGCN", epochs=3, data_dir=tmp_path / "link"), tmp_path / "r", resume=True)
    assert res["epochs_run"] == 3
    other = tmp_path / "other"  # a copy of the data is another folder: refused, both values named
    shutil.copytree(tiny_dir / "tiny", other / "tiny")
    with pytest.raises(ConfigError, match="data_dir: saved"):
        _fit(_cfg(tiny_dir, "LightGCN", epochs=4, data_dir=other), tmp_path / "r", resume=True)


def test_resume_accepts_a_key_added_later_at_its_default(tiny_dir, tmp_path):
    import torch


    _fit(_cfg(tiny_dir, "SIGER", epochs=1), tmp_path / "r")
    ck = tmp_path / "r" / "checkpoint.pt"
    state = torch.load(ck, weights_only=False)
    del state["config"]["model"]["knn_backend"]  # as if written before the key existed
    torch.save(state, ck)
    res = _fit(_cfg(tiny_dir, "SIGER", epochs=2), tmp_path / "r", resume=True)
    assert res["epochs_run"] == 2
    with pytest.raises(ConfigError, match="knn_backend"):
        _fit(_cfg(tiny_dir, "SIGER", epochs=3, knn_backend="faiss"), tmp_path / "r", resume=True)


def test_early_stopping_respects_patience(tiny_dir, tmp_path):
    res = _fit(_cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=0, warmup_steps=0), tmp_path / "es")
    assert res["stopped_early"] and res["epochs_run"] == res["best_epoch"] + 3


def test_patience_counts_only_evaluations_after_the_warmup(tiny_dir, tmp_path):
    # lr 0: valid never improves after epoch 0, so MMRec's rule (warm-up 0) stops at epoch 0 + 2 + 1
    res0 = _fit(_cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=0, warmup_steps=0),
                tmp_path / "w0")
    assert res0["best_epoch"] == 0 and res0["epochs_run"] == 3
    # warm-up 9: the evaluations of epochs 9 and 10 use the patience up -> epochs 0..10
    res = _fit(_cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=9, warmup_steps=0),
               tmp_path / "w9")
    assert res["best_epoch"] == 0 and res["stopped_early"] and res["epochs_run"] == 11
    # a warm-up shorter than the patience still gives the whole patience after it: epochs 2 and 3
    res = _fit(_cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=2, warmup_steps=0),
               tmp_path / "w2")
    assert res["epochs_run"] == 4


def test_warmup_steps_floor_the_warmup_on_a_small_dataset(tiny_dir, tmp_path):
    from siger.train.stopping import effective_warmup

    # by hand: 14,005 train pairs at batch 2048 are 7 batches an epoch; 600 steps need 86 epochs
    assert effective_warmup(20, 600, 14005, 2048) == 86
    assert effective_warmup(20, 600, 59541, 2048) == 20  # 30 batches: 20 epochs are 600 steps already
    assert effective_warmup(20, 0, 14005, 2048) == 20 and effective_warmup(0, 0, 14005, 2048) == 0
    # in a run: lr 0 never improves on epoch 0; a floor of 9 epochs' steps acts as warmup_epochs 9
    cfg = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=2, batch_size=4)
    per_epoch = -(-int(load_data(cfg).train_matrix.nnz) // 4)
    cfg.train.warmup_steps = 9 * per_epoch - (per_epoch - 1)  # rounds up to 9 epochs
    res = _fit(cfg, tmp_path / "s")
    assert per_epoch > 1 and res["stopped_early"] and res["epochs_run"] == 11
    assert res["warmup_epochs_effective"] == 9


def test_patience_used_by_hand():
    from siger.train.stopping import first_stop, patience_used

    epochs = list(range(25))
    assert patience_used(epochs, 3, 20) == 5  # best at 3: 21 evaluations since, 5 of them after the warm-up
    assert patience_used(epochs, 21, 20) == 3  # best at 21: all 3 since then are after the warm-up
    assert patience_used(epochs, 3, 0) == 21  # no warm-up: MMRec's count
    assert patience_used([4, 9, 14, 19, 24], 4, 20) == 1  # eval_every 5: one evaluation after epoch 20
    assert patience_used([], -1, 0) == 0
    # a peak at epoch 1, flat after: with a warm-up of 3 and patience 2 the rule stops after epoch 4
    evals = [(0, 0.1), (1, 0.3), (2, 0.2), (3, 0.2), (4, 0.3), (5, 0.2)]
    assert first_stop(evals, 3, 2) == 4  # 0.3 again at 4 is not better: 3 and 4 count
    assert first_stop(evals, 0, 2) == 3  # MMRec's rule: 2 and 3 since the best
    assert first_stop(evals, 5, 2) is None  # only epoch 5 counts


def test_a_callback_cannot_stop_a_run_inside_the_warmup(tiny_dir, tmp_path):
    """A tuner's pruner gets the trainer's rule: its True inside the warm-up is ignored."""
    cfg = _cfg(tiny_dir, "LightGCN", epochs=20, warmup_epochs=4, warmup_steps=0)
    seen = []
    res = Trainer(cfg, load_data(cfg), tmp_path / "p", log=lambda s: None,
                  on_eval=lambda e, v, r: seen.append(e) or True).fit()
    assert seen == [0, 1, 2, 3, 4] and res["pruned"] and res["epochs_run"] == 5


def test_a_run_continues_under_a_new_stop_rule_where_its_epochs_allow(tiny_dir, tmp_path):
    """Configs differing only in the stop keys train the same epochs: a finished run continues
    under the new rule (and becomes the new config's run), unless that rule would have ended it
    before the epochs it ran."""
    import yaml

    from siger.experiments.runs import train_or_load

    cfg = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=3, warmup_steps=0)
    assert _fit(cfg, tmp_path / "r")["epochs_run"] == 5  # best 0; epochs 3 and 4 count
    first = json.loads((tmp_path / "r" / "record.json").read_text())
    longer = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=6, warmup_steps=0)
    res = train_or_load(longer, tmp_path / "r", log=lambda s: None)
    assert res["epochs_run"] == 8 and res["warmup_epochs_effective"] == 6
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]["warmup_epochs"] == 6
    rec = json.loads((tmp_path / "r" / "record.json").read_text())
    assert rec["config"]["train"]["warmup_epochs"] == 6 and rec["id"] != first["id"] and rec["epochs_run"] == 8
    # the log is that of a run trained under the new rule from the start
    fresh = _fit(longer, tmp_path / "fresh")
    assert fresh["epochs_run"] == 8 and fresh["test"] == res["test"]
    # a shorter warm-up would have ended it at epoch 4, before the 8 epochs it ran: refused
    with pytest.raises(ConfigError, match="ends this run at epoch 4"):
        train_or_load(cfg, tmp_path / "r", log=lambda s: None)
    # a key that changes what an epoch computes is still a different run
    other = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=6, warmup_steps=0, reg_weight=0.5)
    with pytest.raises(ConfigError, match="different config"):
        train_or_load(other, tmp_path / "r", log=lambda s: None)


def test_resumed_finished_run_with_warmup_does_not_train_more(tiny_dir, tmp_path):
    cfg = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=5, warmup_steps=0)
    first = _fit(cfg, tmp_path / "w")
    again = _fit(cfg, tmp_path / "w", resume=True)
    assert first["epochs_run"] == again["epochs_run"] == 7 and again["stopped_early"]


def test_a_run_the_old_rule_stopped_inside_the_warmup_is_continued(tiny_dir, tmp_path, monkeypatch):
    """A finished run stopped by the rule before 2026-12-05 (patience counted from a peak inside the
    warm-up) is continued from its checkpoint when a study or comparison meets it again."""
    import siger.train.trainer as T
    from siger.experiments.runs import train_or_load

    cfg = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=5, warmup_steps=0)
    old = lambda evals, best, warmup: (sum(e > best for e in evals)  # noqa: E731
                                       if evals and evals[-1] + 1 >= warmup else 0)
    monkeypatch.setattr(T, "patience_used", old)
    assert _fit(cfg, tmp_path / "r")["epochs_run"] == 5  # the old rule: stop at epoch 4
    monkeypatch.undo()
    res = train_or_load(cfg, tmp_path / "r", log=lambda s: None)
    assert res["epochs_run"] == 7 and res["best_epoch"] == 0 and res["stopped_early"]
    assert len((tmp_path / "r" / "log.jsonl").read_text().splitlines()) == 7
    assert train_or_load(cfg, tmp_path / "r", log=lambda s: None)["epochs_run"] == 7  # nothing more


def test_a_run_the_current_rule_stopped_inside_the_warmup_is_reused_untouched(tiny_dir, tmp_path):
    """Best epoch 0, inside a 5-epoch warm-up, stopped by today's rule at epoch 6: loading it again
    returns metrics.json as training wrote it (its peak RSS is the training's, not the loader's)."""
    from siger.experiments.runs import train_or_load

    cfg = _cfg(tiny_dir, "LightGCN", epochs=200, patience=2, learning_rate=0.0, warmup_epochs=5, warmup_steps=0)
    first = _fit(cfg, tmp_path / "r")
    assert first["epochs_run"] == 7 and first["best_epoch"] == 0 and first["stopped_early"]
    path = tmp_path / "r" / "metrics.json"
    marked = {**json.loads(path.read_text()), "peak_rss_mb": -1.0}
    path.write_text(json.dumps(marked))
    assert train_or_load(cfg, tmp_path / "r", log=lambda s: None) == marked
    assert json.loads(path.read_text()) == marked


def test_eval_callback_sees_every_evaluation_and_can_stop_the_run(tiny_dir, tmp_path):
    seen = []

    def cb(epoch, valid, replay):
        seen.append((epoch, replay, valid["recall@5"]))
        return epoch == 3

    cfg = _cfg(tiny_dir, "LightGCN", epochs=10, eval_every=2, warmup_epochs=0, warmup_steps=0)
    res = Trainer(cfg, load_data(cfg), tmp_path / "cb", log=lambda s: None, on_eval=cb).fit()
    assert [(e, r) for e, r, _ in seen] == [(1, False), (3, False)]
    assert res["pruned"] and not res["stopped_early"] and res["epochs_run"] == 4
    assert json.loads((tmp_path / "cb" / "metrics.json").read_text())["pruned"] is True
    # on resume, the restored evaluations are replayed (replay=True) before training goes on
    seen.clear()
    cfg = _cfg(tiny_dir, "LightGCN", epochs=6, eval_every=2, warmup_epochs=0, warmup_steps=0)
    Trainer(cfg, load_data(cfg), tmp_path / "cb", log=lambda s: None, on_eval=lambda e, v, r: seen.append((e, r))).fit(
        resume=True)
    assert seen == [(1, True), (3, True), (5, False)]


def test_cli_train_then_evaluate_reproduces_exactly(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--model", "SIGER", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out),
            "--epochs", "2", "--topk", "1,2,5", "--valid_metric", "recall@5"]
    for k, v in FAST.items():
        args += [f"--{k}", v]
    assert main(args) == 0
    assert "| test  |" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(out)]) == 0
    assert "reproduced exactly" in capsys.readouterr().out


def test_bundled_default_dataset_loads():
    from siger.data.dataset import load_dataset

    d = load_dataset("tiktok")
    assert (d.n_users, d.n_items, len(d.train), len(d.valid), len(d.test)) == (9308, 6710, 59541, 3051, 6130)
    assert d.modalities == ["audio", "image"] and d.features["image"].shape == (6710, 128)


def test_ablate_writes_one_table_and_reuses_finished_runs(tiny_dir, tmp_path, capsys, monkeypatch):
    from siger.models.siger import ABLATIONS

    out = tmp_path / "abl"
    args = ["ablate", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out), "--epochs", "1"]
    for k, v in FAST.items():
        args += [f"--{k}", v]
    assert main(args) == 0
    table = (out / "ablation.md").read_text()
    assert all(name in table for name in ABLATIONS)
    assert table.count("\n| ") == len(ABLATIONS) + 1  # header + one row per variant
    runs = sorted(out.glob("*/seed999/metrics.json"))
    assert len(runs) == len(ABLATIONS)
    cfg = yaml.safe_load((out / "no_infusion_beta_0" / "seed999" / "config.yaml").read_text())
    assert cfg["model"]["beta"] == 0.0
    mtime = runs[0].stat().st_mtime
    assert main(args) == 0  # second call reuses the finished runs
    assert runs[0].stat().st_mtime == mtime
    # a subset by slug or full name: nothing retrained, the table keeps every finished variant
    assert main(args + ["--variants", "no_anchor_loss_lambda_a_0,SIGER (full)"]) == 0
    assert (out / "ablation.md").read_text() == table
    assert runs[0].stat().st_mtime == mtime
    # one variant at a time into a fresh folder builds up one table in the canonical order
    out2 = tmp_path / "abl2"
    args2 = [a if a != str(out) else str(out2) for a in args]
    assert main(args2 + ["--variants", "no_anchor_loss_lambda_a_0"]) == 0
    one = (out2 / "ablation.md").read_text()
    assert one.count("\n| ") == 2 and "Not finished yet: SIGER (full);" in one
    assert main(args2 + ["--variants", "SIGER (full)"]) == 0
    two = (out2 / "ablation.md").read_text()
    assert two.count("\n| ") == 3 and two.index("SIGER (full)") < two.index("no anchor loss")
    assert "Not finished yet: no infusion (beta=0); no perturbation (lambda_p=0);" in two
    assert main(args + ["--variants", "no_such_variant"]) != 0
    assert "unknown ablation 'no_such_variant'" in capsys.readouterr().err
    # a variant another process finishes while this one trains is tabled too (looked up after training)
    import shutil

    import siger.experiments.ablate as ablate

    out3 = tmp_path / "abl3"
    real = ablate.train_or_load

    def train_while_another_finishes(cfg, run_dir, log):
        if not (out3 / "siger_full").exists():
            shutil.copytree(out / "siger_full" / "seed999", out3 / "siger_full" / "seed999")
        return real(cfg, run_dir, log)

    monkeypatch.setattr(ablate, "train_or_load", train_while_another_finishes)
    args3 = [a if a != str(out) else str(out3) for a in args]
    assert main(args3 + ["--variants", "no_anchor_loss_lambda_a_0"]) == 0
    three = (out3 / "ablation.md").read_text()
    assert three.count("\n| ") == 3 and three.index("SIGER (full)") < three.index("no anchor loss")


def test_seed_option_is_a_config_key_not_an_abbreviation_of_seeds(tiny_dir, tmp_path):
    """`--seed 1000` once matched `--seeds` by argparse prefix matching and silently trained seed 999."""
    from siger.cli import make_parser

    for cmd in ("ablate", "compare"):
        args, extra = make_parser().parse_known_args([cmd, "--seed", "1000"])
        assert args.seeds == 1 and extra == ["--seed", "1000"]
    out = tmp_path / "abl"
    args = ["ablate", "--dataset", "tiny", "--data-dir", str(tiny_dir), "--out", str(out), "--epochs", "1",
            "--seed", "1000", "--seeds", "2", "--variants", "no_anchor_loss_lambda_a_0"]
    for k, v in FAST.items():
        args += [f"--{k}", v]
    assert main(args) == 0
    runs = sorted(p.name for p in (out / "no_anchor_loss_lambda_a_0").iterdir())
    assert runs == ["seed1000", "seed1001"]
    for s in (1000, 1001):
        cfg = yaml.safe_load((out / "no_anchor_loss_lambda_a_0" / f"seed{s}" / "config.yaml").read_text())
        assert cfg["train"]["seed"] == s
    assert "seeds 1000..1001, mean ± std" in (out / "ablation.md").read_text()


def test_kill_9_then_resume_matches_uninterrupted_run(tiny_dir, tmp_path):
    """SIGKILL a real `siger train` process once it has checkpointed, resume it, compare logs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    base = [sys.executable, "-m", "siger", "train", "--model", "SIGER", "--dataset", "tiny",
            "--data-dir", str(tiny_dir), "--epochs", "40", "--batch_size", "2", "--patience", "100",
            "--progress", "false", "--knn_k", "2", "--cooc_k", "2"]
    env = dict(os.environ)
    full, part = tmp_path / "full", tmp_path / "part"
    assert subprocess.run(base + ["--out", str(full)], env=env, capture_output=True).returncode == 0
    proc = subprocess.Popen(base + ["--out", str(part)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (part / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = subprocess.run(base + ["--out", str(part), "--resume"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    read = lambda p: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if "seconds" not in k} for x in (p / "log.jsonl").read_text().splitlines()
    ]
    assert read(part) == read(full)
    assert json.loads((part / "metrics.json").read_text())["test"] == json.loads((full / "metrics.json").read_text())["test"]


def test_an_unusable_device_is_a_config_error_naming_the_key(tiny_dir, tmp_path):
    import torch

    from siger.config import ConfigError
    from siger.train.trainer import check_device, device_error

    assert device_error("cpu") is None
    assert "not a torch device" in device_error("tpu")
    with pytest.raises(ConfigError, match="--device"):
        check_device("tpu")
    if not torch.cuda.is_available():
        assert "no CUDA device" in device_error("cuda")
        rc = main(["train", "--model", "LightGCN", "--dataset", "tiny", "--data-dir", str(tiny_dir),
                   "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "gpu")])
        assert rc == 2 and not (tmp_path / "gpu" / "model.pt").exists()


def test_a_run_saved_on_another_device_loads_where_that_device_is_missing(tiny_dir, tmp_path):
    import torch

    from siger.train.trainer import load_model

    out = tmp_path / "r"
    _fit(_cfg(tiny_dir, "LightGCN", epochs=2), out)
    doc = yaml.safe_load((out / "config.yaml").read_text())
    doc["train"]["device"] = "cuda:7"  # as written by a run on a GPU machine
    (out / "config.yaml").write_text(yaml.safe_dump(doc))
    model, cfg, _ = load_model(out)
    if torch.cuda.device_count() < 8:
        assert cfg.train.device == "cpu" and next(model.parameters()).device.type == "cpu"
    model, cfg, _ = load_model(out, device="cpu")
    assert cfg.train.device == "cpu"
    assert main(["evaluate", "--run", str(out)]) == 0


def test_a_log_file_gets_one_line_per_epoch_and_no_progress_bar_frames(tiny_dir, tmp_path):
    """Progress bars draw only on a terminal (progress None, the default): stderr redirected to a
    file holds no bar redraws, and stdout one line per evaluated epoch."""
    import subprocess
    import sys

    log = tmp_path / "train.log"
    with open(log, "w") as fh:
        r = subprocess.run([sys.executable, "-m", "siger.cli", "train", "--model", "LightGCN", "--dataset", "tiny",
                            "--data-dir", str(tiny_dir), "--epochs", "3", "--batch_size", "2", "--topk", "5,10,20",
                            "--out", str(tmp_path / "run")], stdout=fh, stderr=subprocess.STDOUT)
    assert r.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "it/s" not in text
    assert [ln.split()[1] for ln in text.splitlines() if ln.startswith("epoch ")] == ["0", "1", "2"]
