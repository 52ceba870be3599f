"""The profile switch: SAMOD_PROFILE picks the sizes, SAMOD_HOME where artifacts live."""

import pytest

from samod.profiles import REPO_ROOT, get_profile, paper, small, tiny


def test_default_profile_is_tiny(monkeypatch):
    monkeypatch.delenv("SAMOD_PROFILE", raising=False)
    assert get_profile() == tiny()
    assert (tiny().n_songs, tiny().min_seconds, tiny().max_seconds) == (128, 20.0, 45.0)


def test_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SAMOD_PROFILE", " Paper ")
    assert get_profile().name == "paper"
    assert (paper().pretrain_seconds, paper().finetune_seconds) == (190.0, 285.0)  # paper 1 §3.2


def test_unknown_profile_says_what_to_do(monkeypatch):
    monkeypatch.setenv("SAMOD_PROFILE", "huge")
    with pytest.raises(ValueError, match="choose one of tiny, small, paper"):
        get_profile()


def test_profiles_keep_artifacts_apart(monkeypatch, tmp_path):
    monkeypatch.delenv("SAMOD_HOME", raising=False)
    assert tiny().corpus_dir == REPO_ROOT / "artifacts" / "tiny" / "corpus"
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path))
    dirs = {p.name: (p.corpus_dir, p.cache_dir, p.checkpoint_dir) for p in (tiny(), small(), paper())}
    assert dirs["small"] == (tmp_path / "small" / "corpus", tmp_path / "small" / "cache",
                             tmp_path / "small" / "checkpoints")
    assert len({d for triple in dirs.values() for d in triple}) == 9


def test_sizes_grow_with_the_profile():
    t, s, p = tiny(), small(), paper()
    assert t.n_songs < s.n_songs <= p.n_songs
    assert t.max_seconds < s.max_seconds and s.min_seconds >= 60.0
    assert t.pretrain_seconds < t.finetune_seconds and s.pretrain_seconds < s.finetune_seconds
