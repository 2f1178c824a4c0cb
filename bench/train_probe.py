"""Fit a sync-pack run into a time budget: time its batches and its validation on this
machine's device, then write the config whose steps per epoch fill the budget.

For a lent GPU session: build the pack here (`syncasd train ic-syncnet --config
ic-syncnet-gpu --prepare`), carry it with the repository, and run on the GPU machine

    python bench/train_probe.py --config ic-syncnet-gpu --budget 420 --out runs/fitted.yaml
    syncasd train ic-syncnet --config runs/fitted.yaml --accelerator gpu

The probe runs 20 warm-up and 100 timed batches (one each on a CPU) of the config's own
training step (`train_sync.window_loss`, Adam) and one validation on the pack; an epoch is
budgeted as its batches × 1.1, one validation and 3 s of loader start and checkpoints. The
bundled IC-SyncNet came from such a run: 111.5 ms a batch on an H200, 239 steps for 420 s.
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from syncasd.data.syncpack import PackSampler, pack_sync_accuracy
from syncasd.train import TrainConfig, initial_model, resolve_config
from syncasd.train_sync import open_pack, window_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ic-syncnet-gpu", help="a config with data.pack")
    parser.add_argument("--budget", type=float, required=True, help="seconds for all epochs")
    parser.add_argument("--out", required=True, help="where to write the fitted config")
    parser.add_argument("--output", help="the fitted run's output folder (default: config's)")
    args = parser.parse_args()

    config = TrainConfig.load(args.config)
    if not config.data.pack:
        parser.error(f"{args.config} has no data.pack: the probe times pack runs")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = initial_model(config).to(device).train()
    t0 = time.perf_counter()
    pack = open_pack(config, model.dims, progress=False)
    print(f"pack: {time.perf_counter() - t0:.1f} s", flush=True)
    sampler = PackSampler(pack, "train", config.sample_config(), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.optim.lr)

    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(config.precision)

    def step(i: int) -> float:
        batch = sampler(torch.Generator(device).manual_seed(i))
        # As Lightning runs a mixed-precision config: autocast around the forward pass.
        with torch.autocast(device.type, dtype=half, enabled=half is not None):
            loss = window_loss(model, batch, config.sync, i)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return float(loss.detach())

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    warm, timed = (20, 100) if device.type == "cuda" else (1, 1)
    for i in range(warm):
        step(i)
    synchronize()
    t0 = time.perf_counter()
    for i in range(timed):
        loss = step(warm + i)
    synchronize()
    step_s = (time.perf_counter() - t0) / timed
    t0 = time.perf_counter()
    accuracy = pack_sync_accuracy(model, pack, "val")
    val_s = time.perf_counter() - t0
    print(
        f"{device}: {1000 * step_s:.1f} ms a batch, validation {val_s:.1f} s, "
        f"loss {loss:.3f}, val accuracy {accuracy.accuracy}",
        flush=True,
    )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")

    per_epoch = args.budget / config.epochs - val_s - 3
    steps = max(1, int(per_epoch / (1.1 * step_s)))
    raw = yaml.safe_load(resolve_config(args.config).read_text())
    raw["steps_per_epoch"] = steps
    if args.output:
        raw["output"] = args.output
    with open(args.out, "w") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    print(f"{config.epochs} epochs of {steps} steps fit {args.budget:.0f} s: wrote {args.out}")


if __name__ == "__main__":
    main()
