"""ONNX Runtime backend for the ASD models: the fastest CPU path.

A model is exported once per checkpoint (keyed by the sha256 of its weights) into the cache
and run by ONNX Runtime with the same `frame_logits(video, mfcc)` API as the torch module.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..audio import MEL_BINS, MFCC_WIDTH, reads_mel
from ..errors import WeightsError


class _FrameLogits(nn.Module):
    """Export wrapper: ONNX traces `forward`, the ASD models expose `frame_logits`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        return self.model.frame_logits(video, mfcc)


def export_digest(model: nn.Module) -> str:
    """Short sha256 of a model's state and of the source of the modules that define its
    parts: names the exported file, so new weights, or a new graph for the same weights (an
    upgraded syncasd), re-export."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    for source in sorted({_source_file(type(m)) for m in model.modules()} - {None}):
        h.update(Path(source).read_bytes())
    return h.hexdigest()[:16]


def _source_file(kind: type) -> str | None:
    try:
        return inspect.getsourcefile(kind)
    except TypeError:  # defined in C
        return None


def export_onnx(model: nn.Module, path: str | Path, frames: int = 50) -> Path:
    """Export `model.frame_logits` to ONNX with a dynamic number of frames (atomic write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    video = torch.rand(1, frames, 112, 112) * 255
    mfcc = torch.randn(1, 4 * frames, MFCC_WIDTH + (MEL_BINS if reads_mel(model) else 0))
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the GRU's fixed batch
            # The exporter restores the wrapper's train/eval mode onto the model: keep it eval.
            torch.onnx.export(
                _FrameLogits(model).eval(),
                (video, mfcc),
                tmp,
                input_names=["video", "mfcc"],
                output_names=["logits"],
                dynamic_axes={"video": {1: "frames"}, "mfcc": {1: "rows"}, "logits": {1: "frames"}},
                opset_version=17,
                dynamo=False,
            )
    return path


class OrtModel:
    """An exported ASD model run by ONNX Runtime; same `frame_logits`/`predict` as the torch one."""

    def __init__(self, onnx_path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise WeightsError(f"{onnx_path}: not a usable ONNX model ({e})") from None
        self.path = Path(onnx_path)
        self.device = torch.device("cpu")
        # A model that ignores an input (a face-only head) is exported without it.
        inputs = {i.name: i for i in self.session.get_inputs()}
        self._inputs = set(inputs)
        # The audio input's width says whether the log-mel rides beside the MFCCs.
        self.reads_mel = "mfcc" in inputs and inputs["mfcc"].shape[-1] != MFCC_WIDTH

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (1, T, 112, 112) gray 0–255, mfcc (1, 4T, 13) (13 + 80 where `reads_mel`)
        → (1, T, 2) logits."""
        feeds = {"video": video, "mfcc": mfcc}
        outputs = self.session.run(
            None,
            {
                name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
                for name, x in feeds.items()
                if name in self._inputs
            },
        )
        return torch.from_numpy(outputs[0])

    def predict(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(video, mfcc).softmax(dim=-1)[..., 1]


def to_ort(model: nn.Module, name: str, cache: Path, threads: int = 0) -> OrtModel:
    """The ORT twin of a loaded torch model, exported into `cache` on first use."""
    path = cache / "onnx" / f"{name}-{export_digest(model)}.onnx"
    if not path.exists():
        export_onnx(model, path)
    return OrtModel(path, threads=threads)
