"""Defaults shared by the library and the command line (importing this loads nothing heavy)."""

# The model `detect`, `eval` and `Detector` use unless told otherwise: ours, synchronization-
# aware, bundled in the package (so it runs offline): Light-ASD's AVA checkpoint gated by our
# sync-aware fine-tune of it (models/ensemble.py).
DEFAULT_MODEL = "sync-light-asd-ensemble"

# The sync backend of `sync`, `scan`, `detect --sync` and `eval sync-accuracy` unless told
# otherwise (the ensemble's AVA half has no offset preference to add).
DEFAULT_SYNC_MODEL = "sync-light-asd"
