"""Error types raised by lmrec.

Library code raises these; the CLI turns them into exit code 2 and one line, the HTTP layer
into JSON 4xx responses. Messages name the file, line, column or field and the bad value.
"""

from __future__ import annotations

from pathlib import Path


class LmrecError(Exception):
    """Base class of every error lmrec raises on purpose."""


class DataError(LmrecError):
    """A dataset file or table is malformed.

    Args:
        message: What is wrong, naming the bad value.
        path: The file the problem is in, when there is one.
        line: 1-based line number in that file, when known.
        column: The column or field name, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        where = []
        if self.path is not None:
            where.append(str(self.path) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DatasetNotFoundError(DataError):
    """A named dataset is neither on disk nor downloadable."""


class ConfigError(LmrecError):
    """A configuration value is missing or invalid; the message names the field."""


class UnknownIdError(LmrecError, KeyError):
    """A user or item id is not known to the dataset or model."""

    def __init__(self, kind: str, value: object) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"unknown {kind} id {value!r}")

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0])


class NotFittedError(LmrecError):
    """A model was used before `fit` or `load`."""


class ModelFileError(LmrecError):
    """A saved model or run directory is missing, incomplete or of the wrong kind."""
