"""The profile switch: SAMOD_PROFILE picks the sizes, SAMOD_HOME where artifacts live, SAMOD_FIGURES where figures go."""

import pytest

from samod.profiles import REPO_ROOT, get_profile, paper, small, tiny


def test_default_profile_is_tiny(monkeypatch):
    monkeypatch.delenv("SAMOD_PROFILE", raising=False)
    assert get_profile() == tiny()
    assert (tiny().n_songs, tiny().min_seconds, tiny().max_seconds) == (512, 20.0, 45.0)


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


def test_figures_go_under_the_profile_unless_samod_figures_says(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    from samod.display import save_figure

    monkeypatch.delenv("SAMOD_FIGURES", raising=False)
    monkeypatch.delenv("SAMOD_PROFILE", raising=False)
    monkeypatch.delenv("SAMOD_HOME", raising=False)
    assert tiny().figures_dir == REPO_ROOT / "artifacts" / "tiny" / "figures"  # never the committed figures/
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path / "home"))
    assert small().figures_dir == small().root / "figures" == tmp_path / "home" / "small" / "figures"
    fig = plt.figure()
    assert save_figure(fig, {"x": 1}, "check") == tmp_path / "home" / "tiny" / "figures" / "check.png"
    monkeypatch.setenv("SAMOD_FIGURES", str(tmp_path / "reference"))
    assert tiny().figures_dir == paper().figures_dir == tmp_path / "reference"
    assert save_figure(fig, {"x": 1}, "check") == tmp_path / "reference" / "check.png"
    assert (tmp_path / "reference" / "check.json").read_text() == '{\n "profile": "tiny",\n "x": 1\n}\n'
    plt.close(fig)
