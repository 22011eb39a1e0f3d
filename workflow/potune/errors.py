"""Exceptions with messages meant for users."""


class PotuneError(Exception):
    """Base class of every error potune raises on purpose."""


class ConfigError(PotuneError):
    """The configuration is invalid; the message names the offending key."""


class DataError(PotuneError):
    """A data file is unusable; the message names the file, frame and key."""


class FitterError(PotuneError):
    """The fitter's own code (quippy, gap_fit, LAMMPS, FitSNAP) failed for these
    hyperparameters, or the model it made cannot predict: a failed trial, recorded with
    this message, not an error of potune."""


#: exception types that quippy, LAMMPS (a plain ``Exception``) and numerical code raise
#: for a model or descriptor they cannot evaluate; any other type raised while evaluating
#: (TypeError, KeyError, AttributeError, NameError, ImportError, ...) is a bug or a broken
#: installation and stops the run
FITTER_EXCEPTION_TYPES = (RuntimeError, OSError, ValueError, ArithmeticError, MemoryError)


def is_fitter_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a fitter's library, is an expected failure of a trial."""
    if isinstance(exc, FitterError):
        return True
    if isinstance(exc, PotuneError) or isinstance(exc, (NotImplementedError, RecursionError)):
        return False
    return type(exc) is Exception or isinstance(exc, FITTER_EXCEPTION_TYPES)


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of an exception (the cause's type for a wrapped fitter failure)."""
    return f"{type(exc).__name__}: {exc}"
