"""The exception classes of SPEC §7, shared by every layer."""


class LumenError(Exception):
    """Base class of lumen's own errors."""


class TracingError(LumenError):
    """The traced function did something that cannot be turned into a graph
    (Python control flow on a traced value, a leaked tracer, ...)."""


class UnsupportedError(LumenError, NotImplementedError):
    """A NumPy function, dtype or argument form that lumen does not compile."""


class DeviceError(LumenError):
    """The requested device is not available or cannot run the program."""


class VerificationError(LumenError, AssertionError):
    """Debug mode: compiled code disagreed with the reference interpreter (SPEC §8)."""


class CacheWarning(UserWarning):
    """The disk cache found a corrupt entry, or cannot use its directory; lumen carries on
    (rebuilding the entry, or caching in memory only)."""
