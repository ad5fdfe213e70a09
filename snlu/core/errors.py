"""The library's own error types: each prints as one clear line, no traceback needed."""

from __future__ import annotations


class SnluError(Exception):
    """Base class of every error snlu raises on purpose (bad recipe, bad data, bad plugin)."""


class ConfigError(SnluError):
    """A recipe is invalid: the message names the full key path."""


class RegistryError(ConfigError):
    """An unknown or duplicate component name."""


class PluginError(SnluError):
    """A plugin failed to load."""


class DataError(SnluError):
    """Bad input data: names the file, the line (1-based, when there is one) and the field."""

    def __init__(self, path: object, message: str | None = None, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        if message is None:  # re-raised from a data-loader worker with the finished text
            super().__init__(self.path)
            return
        where = self.path + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")
