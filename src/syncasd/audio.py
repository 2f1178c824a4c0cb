"""Audio features on the 16 kHz mono int16 signal."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch

from .timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

# Long soundtracks are analysed in blocks of this many 10 ms rows (60 s): framing a whole
# signal at once holds 400 (MFCC) or 800 (log-mel) float64 samples per row, about 730 MB per
# 10 minutes of audio, so an hour-long video needed gigabytes for its features alone.
BLOCK_ROWS = 6000

MFCC_WINDOW = 400  # samples (25 ms)
MFCC_HOP = 160  # samples (10 ms)
_MFCC_PREEMPHASIS = 0.97


def _block_steps(hop: int) -> int:
    """Steps of `hop` samples in one block of audio, as much as `BLOCK_ROWS` MFCC rows (a
    minute): the block of the log-mel and of Silero VAD (`_block_steps(MFCC_HOP)` is
    `BLOCK_ROWS`)."""
    return BLOCK_ROWS * MFCC_HOP // hop


def mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """13 MFCCs per 10 ms exactly as the TalkNet family computes them: (rows, 13) float64.

    python_speech_features defaults on unnormalised int16 samples (25 ms window, 26 filters,
    nfft 512, pre-emphasis 0.97, lifter 22, c0 replaced by log energy). Rows start every 160
    samples while a 400-sample window starts inside the audio, the last one zero-padded: one
    second gives 99 rows, not 100.

    Computed in blocks of `BLOCK_ROWS` rows so memory does not grow with the audio's length;
    each block is pre-emphasised from the sample before it, so the rows equal one call on the
    whole signal.
    """
    # Imported here: the log-mel sync-nets (and a GPU box that trains them) need only numpy.
    import python_speech_features

    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"mfcc expects 16 kHz audio, got {sample_rate} Hz")
    audio = np.asarray(audio)
    if audio.size < MFCC_WINDOW:
        return np.zeros((0, 13))
    n_rows = 1 + -(-(audio.size - MFCC_WINDOW) // MFCC_HOP)
    blocks = []
    for r0 in range(0, n_rows, BLOCK_ROWS):
        r1 = min(r0 + BLOCK_ROWS, n_rows)
        s0, s1 = r0 * MFCC_HOP, min((r1 - 1) * MFCC_HOP + MFCC_WINDOW, audio.size)
        x = audio[max(s0 - 1, 0) : s1].astype(np.float64)
        emphasised = x[1:] - _MFCC_PREEMPHASIS * x[:-1]
        if s0 == 0:
            emphasised = np.concatenate([x[:1], emphasised])
        blocks.append(
            python_speech_features.mfcc(
                emphasised,
                sample_rate,
                numcep=13,
                winlen=MFCC_WINDOW / sample_rate,
                winstep=MFCC_HOP / sample_rate,
                preemph=0,
            )
        )
    return np.concatenate(blocks)


def is_silent(audio: np.ndarray, peak: int = 16) -> bool:
    """True if no sample rises above `peak` (−66 dBFS): digital silence, nothing to hear."""
    return audio.size == 0 or int(np.abs(audio.astype(np.int32)).max()) < peak


# Silero VAD scores 512-sample windows (32 ms at 16 kHz).
VAD_WINDOW = 512


@lru_cache(maxsize=1)
def _silero_vad():
    """The silero_vad module. Importing it sets torch's thread count to 1 for the whole
    process (its `model.py` does so at import), so every use of it goes through here, which
    puts the count back: a stray import once left whole training runs on one core of two."""
    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@lru_cache(maxsize=1)
def _silero():
    # The bundled ONNX model, so no download and no torchaudio.
    with warnings.catch_warnings():  # its resource lookup uses a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        return _silero_vad().load_silero_vad(onnx=True)


def _vad_window_probs(audio: np.ndarray) -> np.ndarray:
    """(ceil(samples / 512),) float32 speech probability of every 512-sample window, the
    last one zero-padded: what Silero's `audio_forward` gives, the state carried from window
    to window. Converted to float as much audio at a time as an MFCC block (a minute), as
    `audio_forward` took float copies of the whole soundtrack (440 MB an hour)."""
    if audio.size < VAD_WINDOW:
        return np.zeros(0, np.float32)
    model = _silero()
    model.reset_states()
    n_windows = -(-audio.size // VAD_WINDOW)
    probs = np.empty(n_windows, np.float32)
    block_windows = _block_steps(VAD_WINDOW)
    for w0 in range(0, n_windows, block_windows):
        block = audio[w0 * VAD_WINDOW : (w0 + block_windows) * VAD_WINDOW].astype(np.float32)
        block = np.pad(block / 32768.0, (0, -block.size % VAD_WINDOW))
        for i, window in enumerate(torch.from_numpy(block).view(-1, VAD_WINDOW)):
            probs[w0 + i] = float(model(window, SAMPLE_RATE))
    return probs


def speech_probability(audio: np.ndarray) -> np.ndarray:
    """Silero VAD speech probability per 25 fps frame: (ceil(samples / 640),) float32.

    Frame t covers samples [640t, 640(t+1)); it gets the window probabilities interpolated at
    its centre (windows are 512 samples, so frames and windows do not line up).
    """
    n = -(-audio.size // SAMPLES_PER_FRAME)
    probs = _vad_window_probs(audio)
    if probs.size == 0:
        return np.zeros(n, np.float32)
    centres = np.arange(probs.size) * VAD_WINDOW + VAD_WINDOW / 2
    frames = np.arange(n) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2
    return np.interp(frames, centres, probs).astype(np.float32)


def speech_frames(audio: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Which 25 fps frames hold speech: (ceil(samples / 640),) bool.

    Silero's own segmentation (hysteresis, speech ≥ 250 ms, pauses ≥ 100 ms, 30 ms padding);
    a frame is speech when its centre sample lies in a segment.
    """
    n = -(-audio.size // SAMPLES_PER_FRAME)
    speech = np.zeros(n, bool)
    probs = _vad_window_probs(audio)
    if probs.size == 0:
        return speech
    segments = _silero_vad().get_speech_timestamps_from_probs(
        probs.tolist(), threshold=threshold, audio_length_samples=audio.size
    )
    centres = np.arange(n) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2
    for seg in segments:
        speech[(centres >= seg["start"]) & (centres < seg["end"])] = True
    return speech


def track_speech(speech: np.ndarray, first: int, n: int) -> np.ndarray:
    """The (n,) part of a `speech_frames` mask for a track of n frames from frame `first`;
    frames past the audio's end hold no speech."""
    out = np.zeros(n, bool)
    part = speech[first : first + n]
    out[: len(part)] = part
    return out


# --- log-mel spectrogram of IC-SyncNet ----------------------------------------------------------

MEL_BINS = 80
MEL_WINDOW = 800  # samples (50 ms): STFT window and FFT size
MEL_HOP = 200  # samples (12.5 ms): 80 columns per second
MEL_COLUMNS_PER_FRAME = 3.2  # 640 samples per 25 fps frame / 200
MEL_WINDOW_COLUMNS = 32  # 0.4 s of audio per five images (IC-SyncNet §3.3)
MEL_CONTEXT = 8  # columns (0.1 s) added on each side of the conventional 16-column window
MEL_SILENCE = -4.0  # the normalised value of digital silence (the floor of the [-4, 4] range)

# The Wav2Lip / VocaLiST mel recipe (their hparams.py), which the sync-nets IC-SyncNet compares
# against share and whose conventions the paper follows.
_PREEMPHASIS = 0.97
_FMIN, _FMAX = 55.0, 7600.0
_REF_LEVEL_DB = 20.0
_MIN_LEVEL_DB = -100.0
_MAX_ABS = 4.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    f = np.asarray(f, np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(
        f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, f * 3.0 / 200.0
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * 200.0 / 3.0)


@lru_cache(maxsize=4)
def _mel_filterbank(sample_rate: int) -> np.ndarray:
    """(80, 401) triangular filters on the Slaney scale with Slaney (area) normalisation, as
    `librosa.filters.mel(sr, n_fft=800, n_mels=80, fmin=55, fmax=7600)` builds them."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, MEL_WINDOW // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(_FMIN), _hz_to_mel(_FMAX), MEL_BINS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


def log_mel(
    audio_int16: np.ndarray, sample_rate: int = SAMPLE_RATE, hop: int = MEL_HOP
) -> np.ndarray:
    """The normalised log-mel spectrogram IC-SyncNet reads: (80, 1 + N // hop) float32.

    Recipe (Wav2Lip's `audio.melspectrogram`, used by VocaLiST; the IC-SyncNet paper gives only
    window 800, hop 200 and 80 bins, so the rest follows the code its conventions come from):
    samples / 32768 → pre-emphasis 0.97 → STFT with an 800-sample periodic Hann window, FFT size
    800, hop 200 (`hop`), centred (signal reflect-padded by 400 samples each side) → magnitude → 80
    Slaney mel filters, 55–7600 Hz → 20·log10(max(x, 1e-5)) − 20 dB → (dB + 100) / 100 mapped
    linearly onto [−4, 4] and clipped. Digital silence is −4 (`MEL_SILENCE`).

    Alignment: column j is centred on sample hop·j, i.e. time j / 80 s at hop 200 (and j / 100 s
    at hop 160, four columns per frame like the MFCC rows: `asd_features`). Video frame t (25 fps)
    covers samples [640t, 640(t + 1)), so its start is column 3.2·t and its centre column
    3.2·t + 1.6; five images starting at frame t span columns 3.2·t … 3.2·t + 16 with their
    centre at column 3.2·t + 8. See `mel_window_start` for the 32-column window.
    """
    audio = np.asarray(audio_int16)
    if audio.ndim != 1:
        raise ValueError(f"expected mono samples (N,), got shape {audio.shape}")
    if sample_rate != SAMPLE_RATE:
        # The window, hop and the 3.2 columns per frame are all defined at 16 kHz.
        raise ValueError(f"log_mel expects 16 kHz audio, got {sample_rate} Hz")
    n_cols = 1 + audio.size // hop
    if audio.size == 0:
        return np.full((MEL_BINS, n_cols), MEL_SILENCE, np.float32)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_WINDOW) / MEL_WINDOW)  # periodic Hann
    out = np.empty((MEL_BINS, n_cols), np.float32)
    block = _block_steps(hop)  # columns
    for j0 in range(0, n_cols, block):
        j1 = min(j0 + block, n_cols)
        x = _emphasised_padded(audio, j0 * hop, (j1 - 1) * hop + MEL_WINDOW)
        frames = np.lib.stride_tricks.sliding_window_view(x, MEL_WINDOW)[::hop]
        magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T  # (401, columns)
        mel = _mel_filterbank(sample_rate) @ magnitude
        db = 20.0 * np.log10(np.maximum(mel, 1e-5)) - _REF_LEVEL_DB
        normalised = 2 * _MAX_ABS * (db - _MIN_LEVEL_DB) / -_MIN_LEVEL_DB - _MAX_ABS
        out[:, j0:j1] = np.clip(normalised, -_MAX_ABS, _MAX_ABS)
    return out


def _emphasised_padded(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the pre-emphasised signal / 32768 padded by half a window on
    each side (reflected, or zeros for a clip no longer than that), as `log_mel`'s STFT reads
    it: one block's worth, so a long soundtrack is never copied whole in float64."""
    n = audio.size
    index = np.arange(start, stop) - MEL_WINDOW // 2  # positions in the unpadded signal
    outside = None
    if n > MEL_WINDOW // 2:  # numpy's reflect padding: -i before the start, 2(n - 1) - i after
        index = np.abs(index)
        index = np.where(index >= n, 2 * (n - 1) - index, index)
    else:
        outside = (index < 0) | (index >= n)
        index = np.clip(index, 0, n - 1)
    x = audio[index].astype(np.float64) / 32768.0
    before = audio[np.maximum(index - 1, 0)].astype(np.float64) / 32768.0
    emphasised = np.where(index > 0, x - _PREEMPHASIS * before, x)  # lfilter([1, -k], [1], x)
    return emphasised if outside is None else np.where(outside, 0.0, emphasised)


MFCC_WIDTH = 13  # MFCCs per row: the first columns of `asd_features`
MEL_HOP_100HZ = 160  # samples (10 ms): one log-mel column per MFCC row


def asd_features(audio_int16: np.ndarray, with_mel: bool = False) -> np.ndarray:
    """The audio rows an ASD model reads (`frame_logits(video, features)`), four per 25-fps
    frame: the MFCCs (rows, 13), and `with_mel` (a model whose `reads_mel` is true, such as
    `sync-light-asd-talknet-icgated`, whose lip gate is IC-SyncNet's) the log-mel at 100 Hz
    beside them, (rows, 13 + 80).

    The log-mel column of row r is centred on sample 160·r (`log_mel` at hop 160); the model
    resamples it to IC-SyncNet's 80 Hz (`icsyncnet.mel_windows_at_100hz`). Rows are cut per
    frame like the MFCCs, so every scorer slices both alike.
    """
    rows = mfcc(audio_int16)
    if not with_mel:
        return rows
    mel = log_mel(audio_int16, hop=MEL_HOP_100HZ)[:, : len(rows)].T
    return np.concatenate([rows, mel], axis=1)


def reads_mel(model: object) -> bool:
    """Whether an ASD model (torch or `OrtModel`) reads `asd_features(..., with_mel=True)`."""
    return bool(getattr(model, "reads_mel", False))


def mel_window_start(start_frame: int | np.ndarray) -> int | np.ndarray:
    """First column of the 32-column window that goes with five images starting at frame t:
    floor(3.2·t) − 8.

    floor(3.2·t) is the conventional (Wav2Lip / VocaLiST: int(80·t / 25)) first column of the
    16-column window of five images, whose first column is aligned with the first image; the
    paper keeps this truncation (Appendix D) and widens the window by 8 columns (0.1 s) on each
    side. Integer arithmetic, 16·t // 5, so there is no float rounding and negative t floor too.
    The window's centre, column floor(3.2·t) + 7.5, is at most 0.8 column (10 ms) before the
    images' centre at 3.2·t + 8 (exactly half a column, 6.25 ms, when 3.2·t is whole).
    """
    if isinstance(start_frame, np.ndarray):
        return (16 * start_frame.astype(np.int64)) // 5 - MEL_CONTEXT
    return (16 * int(start_frame)) // 5 - MEL_CONTEXT


def mel_window(mel: np.ndarray, start_frame: int) -> np.ndarray:
    """The (80, 32) log-mel window centred on the five images start_frame … start_frame + 4.

    `mel` is `log_mel` of audio whose sample 0 is the start of frame 0. Columns outside the
    spectrogram (before the audio starts or after it ends) are filled with `MEL_SILENCE`.
    """
    c0 = mel_window_start(start_frame)
    out = np.full((mel.shape[0], MEL_WINDOW_COLUMNS), MEL_SILENCE, np.float32)
    lo, hi = max(c0, 0), min(c0 + MEL_WINDOW_COLUMNS, mel.shape[1])
    if hi > lo:
        out[:, lo - c0 : hi - c0] = mel[:, lo:hi]
    return out
