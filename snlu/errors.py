"""The library's error types, re-exported from the leaf layer (``snlu.core.errors``) for code written against
``snlu.errors``."""

from snlu.core.errors import ConfigError, DataError, PluginError, RegistryError, SnluError

__all__ = ["ConfigError", "DataError", "PluginError", "RegistryError", "SnluError"]
