"""Exceptions with messages meant for users."""


class PotuneError(Exception):
    """Base class of every error potune raises on purpose."""


class ConfigError(PotuneError):
    """The configuration is invalid; the message names the offending key."""


class DataError(PotuneError):
    """A data file is unusable; the message names the file, frame and key."""
