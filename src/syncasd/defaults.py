"""Defaults shared by the library and the command line (importing this loads nothing heavy)."""

# The model `detect`, `eval` and `Detector` use unless told otherwise: ours, synchronization-
# aware, bundled in the package (so it runs offline).
DEFAULT_MODEL = "sync-light-asd"

# The sync backend of `sync`, `scan` and `detect --sync` unless told otherwise.
DEFAULT_SYNC_MODEL = "sync-light-asd"
