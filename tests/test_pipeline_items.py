"""Cold-start items in the pipeline: add from text, recommend at once, keep in the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lmrec.errors import ConfigError, DataError
from lmrec.items import NewItem
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.models.text import TextSeqRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
from contract import N_ITEMS, planted_data
from test_text_seq import planted_texts, small_model


def _catalog() -> dict[str, dict[str, object]]:
    """Titles and genres as the planted texts hold them (``title: ...; genres: ...``)."""
    out: dict[str, dict[str, object]] = {}
    for i, text in enumerate(planted_texts()):
        title, genres = text.removeprefix("title: ").split("; genres: ")
        out[f"i{i}"] = {"title": title, "categories": [genres]}
    return out


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding a small frozen text model, fitted once."""
    model = small_model()
    model.fit(planted_data()[0])
    run = tmp_path_factory.mktemp("runs") / "text"
    Pipeline(model, catalog=_catalog()).save(run)
    (run / "config.json").write_text('{"data": {"dataset": "planted"}}')
    return run


def _history_titles(pipeline: Pipeline, user: str) -> list[str]:
    model = pipeline.retrieval
    assert model.item_map is not None
    return [
        str(pipeline.catalog[i]["title"]) for i in model.item_map.decode(model.history_of(user))
    ]


def test_new_item_is_recommended_right_after_add_items(trained_dir: Path) -> None:
    pipeline = Pipeline.load(trained_dir)
    # A near copy of a film user u0 watched (group A, Sci-Fi): they should get it.
    title = _history_titles(pipeline, "u0")[-1] + " remastered"
    result = pipeline.add_items([{"id": "new-1", "title": title, "categories": ["Sci-Fi"]}])
    assert result.added == ["new-1"] and result.updated == []
    recs = pipeline.recommend("u0", k=5)
    assert "new-1" in [r.item_id for r in recs]
    new = next(r for r in recs if r.item_id == "new-1")
    assert new.title == title and new.categories == ["Sci-Fi"]
    # By a history of ids too, and the text was written in the catalog's layout.
    assert "new-1" in [r.item_id for r in pipeline.recommend(history=["i0", "i2", "i4"], k=10)]
    assert isinstance(pipeline.retrieval, TextSeqRecommender)
    assert pipeline.retrieval.item_texts is not None
    assert pipeline.retrieval.item_texts[-1] == f"title: {title}; genres: Sci-Fi"


def test_new_item_can_be_in_a_history(trained_dir: Path) -> None:
    pipeline = Pipeline.load(trained_dir)
    pipeline.add_items([NewItem("new-1", title="alien spaceship sequel", categories=("Sci-Fi",))])
    recs = pipeline.recommend(history=["new-1"], k=10)
    assert "new-1" not in [r.item_id for r in recs]
    assert sum(int(r.item_id[1:]) < N_ITEMS // 2 for r in recs) >= 8  # Sci-Fi items follow


def test_known_id_is_updated_not_duplicated(trained_dir: Path) -> None:
    pipeline = Pipeline.load(trained_dir)
    before = pipeline.retrieval.n_items
    result = pipeline.add_items(
        [{"id": "i3", "title": "romantic dinner", "categories": ["Romance"]}]
    )
    assert result.updated == ["i3"] and result.added == []
    assert pipeline.retrieval.n_items == before
    assert pipeline.catalog["i3"] == {"title": "romantic dinner", "categories": ["Romance"]}
    # The Sci-Fi user now ranks i3 lower than before (its text became a romance).
    old = Pipeline.load(trained_dir).retrieval.score(np.array([0]), [np.array([0, 1, 2])])
    new = pipeline.retrieval.score(np.array([0]), [np.array([0, 1, 2])])
    assert new[0, 3] < old[0, 3]


def test_bad_items_raise_and_change_nothing(trained_dir: Path) -> None:
    pipeline = Pipeline.load(trained_dir)
    n, catalog = pipeline.retrieval.n_items, dict(pipeline.catalog)
    with pytest.raises(DataError, match=r"item 2: duplicate item id 'a'"):
        pipeline.add_items([{"id": "a", "title": "x"}, {"id": "a", "title": "y"}])
    with pytest.raises(DataError, match=r"item 1: item 'b' needs a non-empty title or text"):
        pipeline.add_items([{"id": "b", "title": ""}])
    with pytest.raises(DataError, match=r"categories must be a list of strings"):
        pipeline.add_items([{"id": "c", "title": "x", "categories": "Sci-Fi"}])
    assert pipeline.retrieval.n_items == n and pipeline.catalog == catalog
    assert pipeline.add_items([]).added == []


def test_id_only_pipeline_refuses_with_a_config_error() -> None:
    knn = ItemKNNRecommender()
    knn.fit(planted_data()[0])
    with pytest.raises(ConfigError, match=r"'itemknn' .* cannot add items from text"):
        Pipeline(knn).add_items([{"id": "new-1", "title": "alien"}])


def test_update_run_keeps_added_items(trained_dir: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    (run / "result.json").write_text("{}")
    pipeline = Pipeline.load(run)
    pipeline.add_items([{"id": "new-1", "title": "alien spaceship sequel", "categories": ["A"]}])
    pipeline.update_run(run)
    assert sorted(p.name for p in run.iterdir()) == [
        "catalog.json",
        "config.json",
        "model",
        "pipeline.json",
        "result.json",
    ]  # no staging folder left, the rest untouched
    loaded = Pipeline.load(run)
    assert loaded.retrieval.item_map is not None and "new-1" in loaded.retrieval.item_map
    assert loaded.catalog["new-1"]["title"] == "alien spaceship sequel"
    history = [np.array([0, 1])]
    np.testing.assert_array_equal(
        loaded.retrieval.score(np.array([-1]), history),
        pipeline.retrieval.score(np.array([-1]), history),
    )
    assert json.loads((run / "config.json").read_text()) == {"data": {"dataset": "planted"}}


def test_failed_update_leaves_the_run_as_it_was(trained_dir: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    before = (run / "model" / "ids.json").read_text()
    pipeline = Pipeline.load(run)
    pipeline.add_items([{"id": "new-1", "title": "alien spaceship sequel"}])

    def broken_save(path: object) -> None:
        raise OSError("disk full")

    pipeline.retrieval.save = broken_save  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        pipeline.update_run(run)
    assert (run / "model" / "ids.json").read_text() == before
    assert not [p for p in run.iterdir() if p.name.startswith(".update-")]


def test_planted_texts_match_the_catalog_layout() -> None:
    # The fixture's texts are what the pipeline's layout detection reads.
    from lmrec.items import text_layout

    assert text_layout(planted_texts()) == ("title", "genres")


def test_ranker_scores_added_items(movielens_like: Path) -> None:
    from lmrec.data.registry import load_dataset
    from lmrec.data.splitting import encode_split, leave_one_out_split
    from lmrec.models.ctr import CTRModel
    from lmrec.text.cache import item_texts

    dataset = load_dataset(movielens_like, use_cache=False)
    split = encode_split(leave_one_out_split(dataset.interactions), dataset)
    retrieval = small_model(trainer={"epochs": 2, "batch_size": 16, "lr": 0.01, "patience": None})
    retrieval.set_item_texts(item_texts(dataset))
    retrieval.fit(split.train)
    ranker = CTRModel(
        profile_items=3,
        max_length=40,
        max_examples=64,
        trainer={"epochs": 1, "batch_size": 32, "lr": 3e-3, "patience": None, "seed": 0},
    )
    ranker.fit(dataset, split.train)
    pipeline = Pipeline(retrieval, ranker, top_n=80)
    pipeline.add_items(
        [{"id": "new-1", "title": "Action Film 99 (1999)", "categories": ["Action"]}]
    )
    assert ranker.catalog is not None and retrieval.item_map is not None
    assert ranker.catalog.item_map.to_list() == retrieval.item_map.to_list()
    assert ranker.catalog.item_texts[-1] == "title: Action Film 99 (1999); genres: Action"
    recs = pipeline.recommend(history=["1", "2", "3"], k=retrieval.n_items - 3)
    new = next(r for r in recs if r.item_id == "new-1")
    assert 0.0 < new.score < 1.0 and new.score != new.retrieval_score  # the ranker's probability
