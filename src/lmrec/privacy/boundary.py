"""The privacy layer applied to a loaded dataset, before anything else sees it.

:func:`apply_privacy` is called by :func:`lmrec.experiment.prepare_data` right after loading
and before splitting, so the split, the model directory, the logs and the run record only
ever hold pseudonyms and scrubbed text.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lmrec.data.schema import CATEGORIES, ITEM, USER, Dataset
from lmrec.errors import DataError
from lmrec.privacy.config import PrivacyConfig, ScrubConfig
from lmrec.privacy.pseudonyms import Pseudonymizer
from lmrec.privacy.scrub import Scrubber, scrubber_for

if TYPE_CHECKING:
    from lmrec.items import NewItem


def pseudonymize_dataset(dataset: Dataset, pseudonymizer: Pseudonymizer) -> Dataset:
    """The dataset with every user id (interactions and users table) replaced by its pseudonym.

    Raises:
        DataError: Two raw ids got the same pseudonym (see
            :mod:`lmrec.privacy.pseudonyms` for why that does not happen in practice).
    """
    raw = list(dataset.interactions[USER].unique())
    if dataset.users is not None:
        raw.extend(dataset.users[USER])
    mapping = pseudonymizer.mapping(str(r) for r in raw)
    if len(set(mapping.values())) != len(mapping):
        raise DataError("two user ids share a pseudonym; use another key", column=USER)
    interactions = dataset.interactions.copy()
    interactions[USER] = interactions[USER].astype(str).map(mapping).astype(object)
    users = None
    if dataset.users is not None:
        users = dataset.users.copy()
        users[USER] = users[USER].astype(str).map(mapping).astype(object)
    return Dataset(
        name=dataset.name,
        interactions=interactions,
        items=dataset.items,
        users=users,
        text_fields=dataset.text_fields,
    )


def _scrub_frame(frame: pd.DataFrame, scrubber: Scrubber, keep: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if col in keep:
            continue
        values = out[col]
        if col == CATEGORIES:
            out[col] = values.map(lambda cats: tuple(scrubber.scrub(str(c)) for c in cats))
        elif values.dtype == object or isinstance(values.dtype, pd.StringDtype):
            out[col] = values.map(lambda v: scrubber.scrub(v) if isinstance(v, str) else v)
    return out


def scrub_dataset(dataset: Dataset, config: ScrubConfig | PrivacyConfig | None = None) -> Dataset:
    """The dataset with personal data replaced in every text column of the items (titles,
    descriptions, categories) and of the users table; ids are left as they are."""
    scrubber = scrubber_for(config)
    users = None
    if dataset.users is not None:
        users = _scrub_frame(dataset.users, scrubber, (USER,))
    return Dataset(
        name=dataset.name,
        interactions=dataset.interactions,
        items=_scrub_frame(dataset.items, scrubber, (ITEM,)),
        users=users,
        text_fields=dataset.text_fields,
    )


def apply_privacy(dataset: Dataset, config: PrivacyConfig) -> Dataset:
    """Scrub and pseudonymize a freshly loaded dataset as the ``[privacy]`` table asks.

    Raises:
        ConfigError: Pseudonymization is on but no key file is configured or found; the
            message says how to create one.
    """
    if config.scrub:
        dataset = scrub_dataset(dataset, config)
    if config.pseudonymize:
        dataset = pseudonymize_dataset(dataset, Pseudonymizer.from_config(config))
    return dataset


def pseudonymizer_for_run(run_dir: str | Path) -> Pseudonymizer | None:
    """The pseudonymizer a run was trained with, or ``None`` when its ids are raw.

    For the boundary of anything that serves a run (CLI, service): a raw user id ``u`` is
    known to the run's model as ``pseudonymizer.pseudonym(u)``.

    Raises:
        ModelFileError: ``run_dir`` is not a run directory.
        ConfigError: The run pseudonymized its users but its key file cannot be found.
    """
    from lmrec.experiment import read_run_config

    privacy = read_run_config(Path(run_dir)).privacy
    if not privacy.pseudonymize:
        return None
    return Pseudonymizer.from_config(privacy.model_copy(update={"create_key": False}))


def scrub_new_item(item: NewItem, config: ScrubConfig | PrivacyConfig | None = None) -> NewItem:
    """A new catalog item (:meth:`lmrec.pipeline.Pipeline.add_items`) with its title, text and
    categories scrubbed; ``None`` scrubs every built-in kind."""
    scrubber = scrubber_for(config)
    return replace(
        item,
        title=scrubber.scrub(item.title),
        text=scrubber.scrub(item.text),
        categories=tuple(scrubber.scrub(c) for c in item.categories),
    )
