"""What the CTR model reads besides its weights: item texts, titles and user attributes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmrec.data.schema import Dataset, IdMap
from lmrec.errors import DataError, ModelFileError
from lmrec.models.ctr._examples import recent_items
from lmrec.models.ctr._profile import item_titles, profile_text, user_attributes
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
    """

    user_map: IdMap
    item_map: IdMap
    item_texts: list[str]
    item_titles: list[str]
    user_attributes: list[dict[str, str]]

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
        )

    def attributes_of(self, user: int) -> dict[str, str]:
        """The attributes of user index ``user``; ``{}`` for ``-1`` (a user never seen)."""
        return self.user_attributes[user] if 0 <= user < len(self.user_attributes) else {}

    def profile(self, user: int, items: np.ndarray) -> str:
        """The profile text of ``user`` with the given profile items (newest first)."""
        return profile_text([self.item_titles[int(i)] for i in items], self.attributes_of(user))

    def history_profile(self, user: int, history: np.ndarray, item: int, k: int) -> str:
        """The profile for predicting ``item`` after ``history`` (time-ordered, all earlier)."""
        return self.profile(user, recent_items(np.asarray(history), item, k))

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
            )
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise ModelFileError(f"{file} is damaged: {exc}") from exc
