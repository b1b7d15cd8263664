"""The checkpoint folder: round trip, refusal of pickles, damaged folders, crash-safe writing."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import CrossentError
from crossent.recsys import _folder
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import DENSE_FEATURES
from crossent.recsys.serving.checkpoint import LEGACY_FILE, load_checkpoint, save_checkpoint
from crossent.recsys.serving.convert import convert_legacy
from crossent.recsys.serving.recommend import recommend_users

runner = CliRunner()


def _watches(string_users: bool = False) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(12), 5)
    items = np.concatenate([rng.choice(np.arange(100, 130), 5, replace=False) for _ in range(12)])
    if string_users:
        users = np.array([f"u{u:02d}" for u in users], dtype=object)
    return Interactions.from_arrays(users, items, np.arange(len(items)))


def _models(n_items: int, seed: int = 0) -> tuple[CandidateModel, RankingModel, CandidateModel]:
    torch.manual_seed(seed)
    candidate = CandidateModel(CandidateConfig(n_items=n_items, dim=8, hidden=16, history=4))
    with torch.no_grad():
        candidate.item_bias.normal_()  # distinct logits, so orders are unambiguous
    ranking = RankingModel(RankingConfig(dim=8, n_dense=len(DENSE_FEATURES), hidden=(8,)))
    ranking.calibration_scale.fill_(0.75)
    features = CandidateModel(CandidateConfig(n_items=n_items, dim=8, hidden=16, history=4))
    # as loaded: evaluation mode (the sequence model's dropout off)
    return candidate.eval(), ranking.eval(), features.eval()


def _saved(folder: Path, *, string_users: bool = False) -> Path:
    watches = _watches(string_users)
    candidate, ranking, features = _models(watches.n_items)
    titles = [f"movie {item}" if item % 3 else None for item in watches.item_ids]
    return save_checkpoint(
        folder,
        candidate,
        watches,
        ranking=ranking,
        ranking_candidate=features,
        metrics={"model": {"HR@10": 0.5}},
        extra={"data": "x.csv", "min_rating": 4.0},
        titles=titles,
    )


@pytest.mark.parametrize("string_users", [False, True])
def test_round_trip_gives_identical_recommendations(tmp_path, string_users):
    watches = _watches(string_users)
    candidate, ranking, features = _models(watches.n_items)
    _saved(tmp_path, string_users=string_users)
    loaded = load_checkpoint(tmp_path)
    for name, model in (("candidate", candidate), ("ranking_candidate", features)):
        for key, value in model.state_dict().items():
            assert torch.equal(getattr(loaded, name).state_dict()[key], value), key
    for key, value in ranking.state_dict().items():
        assert torch.equal(loaded.ranking.state_dict()[key], value), key
    assert list(loaded.user_ids.astype(str)) == list(watches.user_ids.astype(str))
    assert np.array_equal(loaded.item_ids, watches.item_ids)
    indptr, items = watches.sequences()
    assert np.array_equal(loaded.watch_indptr, indptr) and np.array_equal(loaded.watch_items, items)
    assert loaded.titles[1] == f"movie {watches.item_ids[1]}" or watches.item_ids[1] % 3 == 0
    assert loaded.metrics == {"model": {"HR@10": 0.5}} and loaded.extra["min_rating"] == 4.0
    # the recommendations from the in-memory models and from the loaded checkpoint
    again = load_checkpoint(tmp_path)
    again.candidate, again.ranking, again.ranking_candidate = candidate, ranking, features
    users = np.arange(watches.n_users)
    ours = recommend_users(loaded, users, 5, candidates=10)
    reference = recommend_users(again, users, 5, candidates=10)
    for field in ("items", "scores", "probability", "p_watch"):
        assert np.array_equal(getattr(ours, field), getattr(reference, field)), field


class _Payload:
    """An object whose unpickling runs a shell command (the attack a model file can carry)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "payload_ran"
    # the payload is real: a plain unpickle runs it
    pickle.loads(pickle.dumps(_Payload(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()
    folder = tmp_path / "shared_model"
    folder.mkdir()
    torch.save({"format": 1, "candidate_config": _Payload(marker)}, folder / LEGACY_FILE)
    refused = r"model\.pt: a crossent 0\.1 checkpoint .*convert --trust-pickle"
    with pytest.raises(CrossentError, match=refused):
        load_checkpoint(folder)
    assert not marker.exists()
    with pytest.raises(CrossentError, match="not converted without --trust-pickle"):
        convert_legacy(folder, trust_pickle=False)
    # even when trusted, the restricted unpickler refuses the object instead of running it
    unsafe = r"refused by the restricted unpickler \(it holds posix\.system"
    with pytest.raises(CrossentError, match=unsafe):
        convert_legacy(folder, trust_pickle=True)
    assert not marker.exists()
    result = runner.invoke(app, ["recommend", "--model", str(folder), "--user", "1"])
    assert result.exit_code == 2 and "crossent convert --trust-pickle" in result.output
    result = runner.invoke(app, ["convert", str(folder), "--trust-pickle"])
    assert result.exit_code == 2 and "restricted unpickler" in result.output
    assert not marker.exists()


def _legacy_payload(ranking_state_has_calibration: bool = True) -> dict:
    """What crossent 0.1's save_checkpoint pickled into model.pt."""
    watches = _watches()
    candidate, ranking, features = _models(watches.n_items)
    ranking_state = ranking.state_dict()
    if not ranking_state_has_calibration:
        del ranking_state["calibration_scale"], ranking_state["calibration_shift"]
    indptr, items = watches.sequences()
    return {
        "format": 1,
        "candidate_config": vars(candidate.config),
        "candidate_state": candidate.state_dict(),
        "ranking_config": vars(ranking.config),
        "ranking_state": ranking_state,
        "ranking_candidate_config": vars(features.config),
        "ranking_candidate_state": features.state_dict(),
        "user_ids": watches.user_ids,
        "item_ids": watches.item_ids,
        "watch_indptr": indptr,
        "watch_items": items,
        "history": {"retrieval": {"train_bits": [3.0], "valid_bits": [3.5]}},
        "metrics": {"model": {"HR@10": 0.25}},
        "extra": {"data": "ratings.csv"},
    }


def test_a_trusted_legacy_checkpoint_converts_to_the_same_recommendations(tmp_path):
    torch.save(_legacy_payload(), tmp_path / LEGACY_FILE)
    result = runner.invoke(app, ["convert", str(tmp_path), "--trust-pickle"])
    assert result.exit_code == 0, result.output
    assert "can run any code" in result.output
    loaded = load_checkpoint(tmp_path)
    reference = load_checkpoint(_saved(tmp_path / "fresh"))
    users = np.arange(len(loaded.user_ids))
    ours = recommend_users(loaded, users, 5, candidates=10)
    theirs = recommend_users(reference, users, 5, candidates=10)
    for field in ("items", "scores", "probability", "p_watch"):
        assert np.array_equal(getattr(ours, field), getattr(theirs, field)), field
    assert loaded.metrics == {"model": {"HR@10": 0.25}}
    assert loaded.curves["retrieval"]["valid_bits"] == [3.5]


def test_a_legacy_checkpoint_from_before_calibration_converts_with_the_identity(tmp_path):
    torch.save(_legacy_payload(ranking_state_has_calibration=False), tmp_path / LEGACY_FILE)
    convert_legacy(tmp_path, trust_pickle=True, out=tmp_path / "new")
    ranking = load_checkpoint(tmp_path / "new").ranking
    assert float(ranking.calibration_scale) == 1.0 and float(ranking.calibration_shift) == 0.0


def test_configs_saved_before_the_sequence_model_load_as_bag_models(tmp_path):
    """crossent 0.1 configs have no ``model`` and call the objective ``negatives``."""
    watches = _watches()
    torch.manual_seed(0)
    bag = CandidateModel(CandidateConfig(n_items=watches.n_items, model="bag", dim=8, history=4))
    old = {k: v for k, v in vars(bag.config).items() if k not in ("model", "objective")}
    old |= {"negatives": "sampled", "n_sampled": old.pop("n_negatives")}
    newer = ("blocks", "heads", "dropout", "gbce_t", "tie_embeddings", "block", "item_bias")
    for name in newer:
        del old[name]
    payload = _legacy_payload()
    payload |= {"candidate_config": old, "candidate_state": bag.state_dict()}
    payload |= {"ranking_config": None, "ranking_candidate_config": None}
    torch.save(payload, tmp_path / LEGACY_FILE)
    convert_legacy(tmp_path, trust_pickle=True, out=tmp_path / "new")
    expected = dataclasses.replace(bag.config, objective="sampled", block="pre-norm")
    assert load_checkpoint(tmp_path / "new").candidate.config == expected
    # a folder whose JSON holds the old field names loads the same
    tensors, meta = _folder.read_folder(tmp_path / "new", "recommender", 2)
    _folder.write_folder(
        tmp_path / "new", "recommender", 2, tensors, meta | {"candidate_config": old}
    )
    loaded = load_checkpoint(tmp_path / "new")
    assert loaded.candidate.config == expected
    for key, value in bag.state_dict().items():
        assert torch.equal(loaded.candidate.state_dict()[key], value), key


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _part(folder: Path, name: str) -> Path:
    return folder / _manifest(folder)["parts"][name]["file"]


def _truncate(folder: Path) -> None:
    path = _part(folder, "tensors")
    path.write_bytes(path.read_bytes()[:1000])


def _flip_a_byte(folder: Path) -> None:
    path = _part(folder, "tensors")
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def _foreign(folder: Path) -> None:
    (folder / "manifest.json").write_text(json.dumps({"format": "someone-else", "version": 1}))


def _newer(folder: Path) -> None:
    manifest = _manifest(folder)
    manifest["version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _partial(folder: Path) -> None:
    _part(folder, "meta").unlink()


def _not_json(folder: Path) -> None:
    (folder / "manifest.json").write_text("{ half a manifest")


def _missing_key(folder: Path) -> None:
    # a consistent folder (sizes and hashes match) whose JSON lacks the candidate's config
    loaded = load_checkpoint(folder)
    tensors, meta = _folder.read_folder(folder, "recommender", 2)
    del meta["candidate_config"]
    _folder.write_folder(folder, "recommender", 2, tensors, meta)
    assert loaded is not None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, r"recommender\.[0-9a-f]+\.safetensors: 1000 bytes, the manifest says \d+"),
        (_flip_a_byte, r"\.safetensors: SHA-256 differs from the manifest's"),
        (_foreign, r"manifest\.json: not a crossent checkpoint"),
        (_newer, r"manifest\.json: format version 99 was written by a newer crossent"),
        (_partial, r"recommender\.[0-9a-f]+\.json: missing .*the checkpoint is partial"),
        (_not_json, r"manifest\.json: not a crossent checkpoint manifest"),
        (_missing_key, r"manifest\.json: the JSON part has no 'candidate_config'"),
    ],
)
def test_a_damaged_folder_gets_one_line_naming_the_file(tmp_path, damage, message):
    _saved(tmp_path)
    damage(tmp_path)
    with pytest.raises(CrossentError, match=message):
        load_checkpoint(tmp_path)
    result = runner.invoke(app, ["recommend", "--model", str(tmp_path), "--user", "1"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output


@pytest.mark.parametrize("crash_at", ["tensors", "manifest"])
def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch, crash_at):
    _saved(tmp_path)
    before = load_checkpoint(tmp_path)
    replace = os.replace
    calls = {"n": 0}

    def crashing_replace(source, target):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        is_manifest = Path(target).name == "manifest.json"
        if (crash_at == "manifest") == is_manifest and (crash_at == "manifest" or calls["n"] == 1):
            raise OSError("disk full")
        return replace(source, target)

    monkeypatch.setattr(_folder.os, "replace", crashing_replace)
    watches = _watches()
    other = _models(watches.n_items, seed=1)[0]
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, other, watches)
    monkeypatch.undo()
    after = load_checkpoint(tmp_path)
    for key, value in before.candidate.state_dict().items():
        assert torch.equal(after.candidate.state_dict()[key], value), key
    assert after.ranking is not None
    # the next complete write removes what the crashed one left behind
    save_checkpoint(tmp_path, other, watches)
    assert len(list(tmp_path.iterdir())) == 3  # manifest.json and its two parts
    assert load_checkpoint(tmp_path).ranking is None


def test_a_sequence_model_saved_before_the_sasrec_block_loads_and_scores_as_trained(tmp_path):
    """Files written before the SASRec block hold a pre-LayerNorm encoder with a learnt item
    bias, and a config without ``block`` or ``item_bias``: they load as that encoder."""
    watches = _watches()
    torch.manual_seed(0)
    config = CandidateConfig(
        n_items=watches.n_items, dim=8, history=4, block="pre-norm", item_bias=True
    )
    old_model = CandidateModel(config)
    with torch.no_grad():
        old_model.item_bias.normal_()
    save_checkpoint(tmp_path, old_model.eval(), watches)
    tensors, meta = _folder.read_folder(tmp_path, "recommender", 2)
    saved = {k: v for k, v in meta["candidate_config"].items() if k not in ("block", "item_bias")}
    _folder.write_folder(tmp_path, "recommender", 2, tensors, meta | {"candidate_config": saved})
    loaded = load_checkpoint(tmp_path).candidate
    assert loaded.config == config
    users = np.arange(watches.n_users)
    watched = watches.sequences()
    np.testing.assert_array_equal(loaded.score(users, watched), old_model.score(users, watched))
    # the new default is a different network: its state does not fit the old encoder
    assert set(CandidateModel(CandidateConfig(n_items=5, dim=8, history=4)).state_dict()) != set(
        old_model.state_dict()
    )
