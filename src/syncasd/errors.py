"""Errors the library raises; the CLI turns each into exit code 2 and one line on stderr."""


class SyncASDError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class MediaError(SyncASDError):
    """The input cannot be decoded: missing, empty, not a video, truncated, no audio, silent."""


class WeightsError(SyncASDError):
    """A checkpoint is missing, unreadable or does not fit the architecture."""


class InputError(SyncASDError):
    """An argument or side file (boxes CSV, options) is invalid."""
