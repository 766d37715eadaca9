"""The service's privacy boundary: raw ids become the run's pseudonyms, free text is scrubbed.

:class:`ServiceBoundary` is applied by :class:`lmrec.service.runtime.RecommendationService`
to everything a request brings in, before it is stored, cached, logged or given to the model:

- user ids (path parameters and events) become the pseudonyms the served run's model knows
  its users by, when the run was trained with ``[privacy] pseudonymize = true`` (the run's
  ``config.json`` names the key file, never the key); a user is deleted by raw id because the
  pseudonym is recomputed;
- client event ids become keyed pseudonyms too (clients often build them from user ids); a
  repeated event id still maps to the same value, so a retried batch is stored once;
- free text (stated preferences, item titles, descriptions and categories) is scrubbed of
  e-mail addresses, phone numbers, card numbers, IPs and URLs with query strings
  (:func:`lmrec.privacy.scrub_text`), with the run's own ``[privacy]`` settings when it
  scrubbed its data, else every built-in kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lmrec.privacy.config import ScrubConfig
from lmrec.privacy.forgetting import id_space
from lmrec.privacy.pseudonyms import Pseudonymizer
from lmrec.privacy.scrub import Scrubber, scrubber_for


@dataclass(frozen=True)
class ServiceBoundary:
    """How raw ids and texts of requests are turned into what the store and model see.

    Args:
        pseudonymizer: The served run's pseudonymizer; ``None`` keeps raw ids.
        scrub: What the scrubber replaces.
    """

    pseudonymizer: Pseudonymizer | None = None
    scrub: ScrubConfig = field(default_factory=ScrubConfig)

    @classmethod
    def for_run(cls, run_dir: str | Path) -> ServiceBoundary:
        """The boundary of a run directory, from its ``config.json`` ``[privacy]`` table.

        Raises:
            ConfigError: The run pseudonymized its users but its key file cannot be read.
        """
        from lmrec.experiment import read_run_config
        from lmrec.privacy.boundary import pseudonymizer_for_run

        if not (Path(run_dir) / "config.json").is_file():
            return cls()
        privacy = read_run_config(Path(run_dir)).privacy
        scrub = privacy.scrub_config() if privacy.scrub else ScrubConfig()
        return cls(pseudonymizer_for_run(run_dir), scrub)

    @property
    def id_space(self) -> str:
        """``"raw"`` or ``"key:<key id>"``: which ids the store holds (and deletion records)."""
        return id_space(self.pseudonymizer)

    @property
    def scrubber(self) -> Scrubber:
        return scrubber_for(self.scrub)

    def user(self, raw_id: str) -> str:
        """The id the model and the store know a user by."""
        return raw_id if self.pseudonymizer is None else self.pseudonymizer.pseudonym(raw_id)

    def event_id(self, raw_id: str) -> str:
        """The event id the store keeps."""
        if self.pseudonymizer is None:
            return raw_id
        return self.pseudonymizer.event_pseudonym(raw_id)

    def text(self, text: str) -> str:
        """``text`` with personal data replaced by typed placeholders."""
        return self.scrubber.scrub(text)

    def texts(self, texts: Sequence[str]) -> list[str]:
        scrubber = self.scrubber
        return [scrubber.scrub(t) for t in texts]
