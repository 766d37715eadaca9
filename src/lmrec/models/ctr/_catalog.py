"""What the CTR model reads besides its weights: item texts, titles and user attributes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmrec.data.schema import CATEGORIES, Dataset, IdMap
from lmrec.errors import DataError, ModelFileError
from lmrec.models.ctr._examples import recent_items
from lmrec.models.ctr._profile import item_titles, profile_text, user_attributes
from lmrec.profile import top_categories
from lmrec.text.cache import item_texts


@dataclass
class CTRCatalog:
    """The text side of a dataset, in id-map order, saved with a fitted model.

    Args:
        user_map: User indices.
        item_map: Item indices.
        item_texts: Per item, the text on the item side of a pair.
        item_titles: Per item, the short title shown in user profiles.
        user_attributes: Per user, the attributes shown in the profile (``{}`` for none).
        item_categories: Per item, its categories (for ``profile_categories``); ``None``
            in catalogs saved before they were kept. Items beyond the list have none.
    """

    user_map: IdMap
    item_map: IdMap
    item_texts: list[str]
    item_titles: list[str]
    user_attributes: list[dict[str, str]]
    item_categories: list[list[str]] | None = None

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_map), len(self.user_map)
        if len(self.item_texts) != n_items or len(self.item_titles) != n_items:
            raise DataError(
                f"the catalog has {n_items} items but {len(self.item_texts)} texts and "
                f"{len(self.item_titles)} titles"
            )
        if len(self.user_attributes) != n_users:
            raise DataError(
                f"the catalog has {n_users} users but {len(self.user_attributes)} attribute rows"
            )

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        *,
        text_fields: Sequence[str] | None = None,
        user_fields: Sequence[str] | None = None,
    ) -> CTRCatalog:
        """Read texts and attributes from ``dataset``.

        Args:
            dataset: The dataset.
            user_map: The user indices the model works with; default ``dataset.user_map()``.
            item_map: The item indices; default ``dataset.item_map()``. Must list the
                dataset's catalog in its order (as every split of it does).
            text_fields: Item columns of the item side; ``None`` uses the dataset's own.
            user_fields: User columns of the profile; see :func:`user_attributes`.

        Raises:
            DataError: ``item_map`` is not the dataset's catalog.
            ConfigError: A field is not a column of the dataset.
        """
        own = dataset.item_map()
        item_map = item_map if item_map is not None else own
        if item_map.to_list() != own.to_list():
            raise DataError(
                f"the item map ({len(item_map)} items) is not the catalog of {dataset.name!r} "
                f"({len(own)} items in its order)"
            )
        user_map = user_map if user_map is not None else dataset.user_map()
        return cls(
            user_map=user_map,
            item_map=item_map,
            item_texts=item_texts(dataset, text_fields),
            item_titles=item_titles(dataset),
            user_attributes=user_attributes(dataset, user_map, user_fields),
            item_categories=[
                [str(c) for c in (cats if cats is not None else ())]
                for cats in dataset.items[CATEGORIES].tolist()
            ]
            if CATEGORIES in dataset.items.columns
            else None,
        )

    def add_items(self, texts: Mapping[str, str], titles: Mapping[str, str]) -> None:
        """Append new item ids (after the last item) or replace the text and title of known ones.

        Args:
            texts: Item id -> the item side's text.
            titles: Item id -> the title shown in profiles (the id when missing).
        """
        new_ids = [i for i in texts if i not in self.item_map]
        for item_id, text in texts.items():
            if item_id in self.item_map:
                row = self.item_map.index(item_id)
                self.item_texts[row] = text
                self.item_titles[row] = titles.get(item_id, item_id)
        if new_ids:
            self.item_map = IdMap([*self.item_map.to_list(), *new_ids], "item")
            self.item_texts.extend(texts[i] for i in new_ids)
            self.item_titles.extend(titles.get(i, i) for i in new_ids)

    def attributes_of(self, user: int) -> dict[str, str]:
        """The attributes of user index ``user``; ``{}`` for ``-1`` (a user never seen)."""
        return self.user_attributes[user] if 0 <= user < len(self.user_attributes) else {}

    def profile(
        self, user: int, items: np.ndarray, titles: int | None = None, categories: int = 0
    ) -> str:
        """The profile text of ``user`` with the given profile items (newest first).

        Args:
            user: The user index (``-1``: no attributes).
            items: The profile items, newest first.
            titles: Titles shown, of the newest items; ``None`` shows all of ``items``.
            categories: Top categories of ``items`` shown (recency-weighted); 0 for none.
        """
        shown = items if titles is None else items[:titles]
        top = None
        if categories:
            top = top_categories([self._categories_of(int(i)) for i in items], categories)
        return profile_text(
            [self.item_titles[int(i)] for i in shown], self.attributes_of(user), top
        )

    def history_profile(
        self,
        user: int,
        history: np.ndarray,
        item: int,
        k: int,
        titles: int | None = None,
        categories: int = 0,
    ) -> str:
        """The profile for predicting ``item`` after ``history`` (time-ordered, all earlier)
        from its ``k`` most recent other items; see :meth:`profile`."""
        return self.profile(user, recent_items(np.asarray(history), item, k), titles, categories)

    def _categories_of(self, item: int) -> list[str]:
        known = self.item_categories or []
        # Items added after the catalog was built (add_items) have no categories.
        return known[item] if item < len(known) else []

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``catalog.json`` into directory ``path``."""
        data = {
            "users": self.user_map.to_list(),
            "items": self.item_map.to_list(),
            "item_texts": self.item_texts,
            "item_titles": self.item_titles,
            "user_attributes": self.user_attributes,
        }
        if self.item_categories is not None:
            data["item_categories"] = self.item_categories
        (path / "catalog.json").write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> CTRCatalog:
        """Read what :meth:`save` wrote into ``path``."""
        file = path / "catalog.json"
        if not file.exists():
            raise ModelFileError(f"{path} lacks catalog.json")
        try:
            data = json.loads(file.read_text())
            return cls(
                user_map=IdMap(data["users"], "user"),
                item_map=IdMap(data["items"], "item"),
                item_texts=list(data["item_texts"]),
                item_titles=list(data["item_titles"]),
                user_attributes=[dict(a) for a in data["user_attributes"]],
                item_categories=(
                    [list(c) for c in data["item_categories"]]
                    if data.get("item_categories") is not None
                    else None
                ),
            )
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise ModelFileError(f"{file} is damaged: {exc}") from exc
