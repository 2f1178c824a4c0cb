"""Defaults shared by the library and the command line (importing this loads nothing heavy)."""

# The model `detect`, `eval` and `Detector` use unless told otherwise: ours, synchronization-
# aware, bundled in the package (so it runs offline): Light-ASD's AVA checkpoint gated by our
# sync-aware fine-tune of it (models/ensemble.py).
DEFAULT_MODEL = "sync-light-asd-ensemble"

# The sync backend of `sync`, `scan`, `detect --sync` and `eval sync-accuracy` unless told
# otherwise: on the validation identities it finds the offset more often than the ensemble
# (sync accuracy 49.4 against 47.6 % at 5 frames), whose AVA half has no offset preference.
DEFAULT_SYNC_MODEL = "sync-light-asd"
