"""The one timeline every part of syncasd shares, in a module with no imports.

Models and outputs run on 25 frames a second; audio is 16 kHz mono; the MFCC has 100 rows a
second. So model frame t covers samples [640 t, 640 (t + 1)) and MFCC rows 4 t … 4 t + 3.
Kept free of NumPy, PyAV and torch so that any module (a GPU box's trainer, the numpy-only
`syncmap`) can take these numbers from one place.
"""

SAMPLE_RATE = 16000  # Hz: the audio every model reads
MODEL_FPS = 25  # model frames a second; other rates are resampled onto this timeline
SAMPLES_PER_FRAME = SAMPLE_RATE // MODEL_FPS  # 640
ROWS_PER_FRAME = 4  # MFCC rows (10 ms hop) per model frame
MS_PER_FRAME = 1000.0 / MODEL_FPS  # 40 ms
