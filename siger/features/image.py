"""Image embeddings of items from a user-supplied weights file (no download at run time).

``--encoder torchvision:resnet50 --weights FILE``: a torchvision-format ResNet ``state_dict``
(``.pth``); features are the global-average-pooled last block (2048-d for ResNet-50, 512-d for
ResNet-18/34), with torchvision's ImageNet preprocessing (resize 256, centre crop 224, mean/std).
Images are files ``<key>.<jpg|jpeg|png|webp|bmp>`` in one folder, the key being the item id
(``itemID``), or the original item id when an ``i_id_mapping.csv`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from siger.data.validate import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load_encoder(encoder: str, weights: str | Path | None) -> torch.nn.Module:
    """Build ``family:arch`` and load its weights; a missing weights file is a clear error."""
    from siger.features.resnet import ARCHS, resnet

    family, _, arch = encoder.partition(":")
    if family != "torchvision" or arch not in ARCHS:
        raise ValueError(f"unknown encoder {encoder!r}; supported: " + ", ".join(f"torchvision:{a}" for a in ARCHS))
    if weights is None:
        raise FileNotFoundError(
            f"--weights is required for {encoder}: siger never downloads weights; pass a torchvision "
            f"state_dict file (e.g. {arch}-*.pth from the torchvision release)"
        )
    wpath = Path(weights)
    if not wpath.is_file():
        raise FileNotFoundError(f"weights file not found: {wpath} (siger never downloads weights)")
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise DataError(wpath, f"cannot read weights: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    n_classes = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
    model = resnet(arch, n_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DataError(wpath, f"not a torchvision {arch} state_dict: {str(e).splitlines()[0]}") from None
    return model.eval()


def _load_mapping(path: Path) -> dict[str, int]:
    from siger.data.prepare import read_table

    header, rows = read_table(path)
    if len(header) < 2:
        raise DataError(path, "expected columns original_id, itemID", line=1)
    out = {}
    for n, row in rows:
        try:
            out[row[header[0]].strip()] = int(row[header[1]])
        except ValueError:
            raise DataError(path, f"expected an integer itemID, got {row[header[1]]!r}", line=n, field=header[1]) from None
    return out


def find_images(folder: str | Path, n_items: int | None = None, mapping: str | Path | None = None) -> dict[int, Path]:
    """itemID -> image file. Files whose key is not an item are an error (nothing ignored silently)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    key_to_id = _load_mapping(Path(mapping)) if mapping is not None else None
    found: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if key_to_id is not None:
            if p.stem not in key_to_id:
                raise DataError(p, f"no item with original id {p.stem!r} in {mapping}")
            i = key_to_id[p.stem]
        else:
            try:
                i = int(p.stem)
            except ValueError:
                raise DataError(p, "image file names must be <itemID>.<ext> (or pass --mapping i_id_mapping.csv)") from None
        if i in found:
            raise DataError(p, f"item {i} has two images ({found[i].name})")
        if n_items is not None and not 0 <= i < n_items:
            raise DataError(p, f"item id {i} outside 0..{n_items - 1}")
        found[i] = p
    if not found:
        raise DataError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def preprocess(path: Path) -> torch.Tensor:
    """torchvision's ImageNet eval transform: resize shorter side 256, centre crop 224, normalise."""
    from siger.extras import require

    Image = require("PIL.Image", "features", "image features (Pillow)")

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = 256 / min(w, h)
            im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
            w, h = im.size
            left, top = int(round((w - 224) / 2.0)), int(round((h - 224) / 2.0))
            im = im.crop((left, top, left + 224, top + 224))
            x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    except OSError as e:
        raise DataError(path, f"cannot read image: {e}") from None
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


@torch.no_grad()
def encode_images(images: dict[int, Path], n_items: int, model: torch.nn.Module, batch_size: int = 32,
                  missing: str = "error", progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """float32 ``[n_items, feature_dim]``; items without an image: error, or 'mean'/'zero' fill.

    Returns the features and the list of filled item ids (reported by the CLI).
    """
    from tqdm import tqdm

    absent = [i for i in range(n_items) if i not in images]
    if absent and missing == "error":
        raise DataError(next(iter(images.values())).parent,
                        f"{len(absent)} of {n_items} items have no image (first: {absent[:5]}); "
                        "add them or pass --missing mean|zero")
    ids = sorted(images)
    out = np.zeros((n_items, model.feature_dim), dtype=np.float32)
    with tqdm(total=len(ids), desc="image features", unit="img", disable=not progress) as bar:
        for s in range(0, len(ids), batch_size):
            chunk = ids[s:s + batch_size]
            x = torch.stack([preprocess(images[i]) for i in chunk])
            out[chunk] = model.features(x).numpy()
            bar.update(len(chunk))
    if absent and missing == "mean":
        out[absent] = out[ids].mean(axis=0)
    return out, absent
