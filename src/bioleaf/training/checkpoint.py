"""Checkpoints and models: safetensors files with their JSON metadata inside the same file.

One file per checkpoint makes each write atomic: the tensors and the JSON go to a temporary file
in the same directory, which is flushed, fsynced and renamed over the old one. A reader sees the
previous whole file or the new whole file, never a mix. Loading never unpickles: safetensors
holds raw tensors and the metadata is parsed as JSON.

Integrity: the header also holds a SHA-256 digest (``bioleaf_sha256``) of the JSON metadata and of
every tensor's name, dtype, shape and bytes. Loading recomputes it, so a bit flipped anywhere in the
file (tensor data included, which safetensors itself does not check) is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from bioleaf.errors import DataError

FORMAT = "bioleaf-1"
_UMASK = os.umask(0)
os.umask(_UMASK)
META_KEY = "bioleaf"
DIGEST_KEY = "bioleaf_sha256"


def _digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the metadata text and of each tensor's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and the JSON ``meta`` as one safetensors file, atomically."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta_json = json.dumps({"format": FORMAT, **meta}, allow_nan=False)
    header = {META_KEY: meta_json, DIGEST_KEY: _digest(meta_json, flat)}
    atomic_write_bytes(path, save(flat, metadata=header))


def load_tensors(path: Path, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`; :class:`DataError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable safetensors file ({reason})") from None
    if META_KEY not in header:
        raise DataError(f"{path}: foreign safetensors file (no '{META_KEY}' metadata; not written by bioleaf)")
    if DIGEST_KEY not in header:
        raise DataError(f"{path}: no integrity digest in the metadata (not written by this version of bioleaf)")
    if _digest(header[META_KEY], tensors) != header[DIGEST_KEY]:
        raise DataError(f"{path}: corrupted file (integrity digest mismatch: the contents changed after writing)")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError:
        raise DataError(f"{path}: corrupted metadata (not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: unsupported checkpoint format {meta.get('format') if isinstance(meta, dict) else meta!r}"
                        f" (expected {FORMAT})")
    return tensors, meta


def check_tensors(path: Path, found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every expected tensor is present with the same shape and dtype (:class:`DataError` otherwise)."""
    for name, ref in expected.items():
        if name not in found:
            raise DataError(f"{path}: missing tensor {name!r}")
        got = found[name]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise DataError(f"{path}: tensor {name!r} has shape {tuple(got.shape)} {got.dtype}, "
                            f"expected {tuple(ref.shape)} {ref.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise DataError(f"{path}: tensor {name!r} holds non-finite values")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise DataError(f"{path}: unexpected tensors {extra[:5]} (checkpoint of another network?)")


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimiser's state into tensors (``opt.<param>.<key>``) and JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                         path: Path) -> None:
    """Inverse of :func:`optimizer_state`; :class:`DataError` if it does not fit ``opt``."""
    state: dict[int, dict] = {}
    try:
        for name, value in tensors.items():
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
        for name, value in meta.get("scalars", {}).items():
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = value
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise DataError(f"{path}: optimiser state does not fit this run ({str(e).splitlines()[0]})") from None
    params = [p for group in opt.param_groups for p in group["params"]]
    for idx, values in state.items():
        for key, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0 and (idx >= len(params) or value.shape != params[idx].shape):
                raise DataError(f"{path}: optimiser state {key!r} of parameter {idx} has shape {tuple(value.shape)}, "
                                "which does not fit this run")
