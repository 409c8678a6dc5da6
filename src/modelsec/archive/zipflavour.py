"""What kind of model a zip archive is, from its member names.

Framework loaders decide by names too (``torch.load`` looks for ``<root>/data.pkl``,
``np.load`` treats a zip as ``.npz``, Keras v3 opens ``config.json``), so the flavour is
the name of the loader that would consume the archive. Member *contents* are still
recognised by content when scanned.
"""

from __future__ import annotations

import re

from modelsec.context import FormatCategory

ZIP = "zip"
PYTORCH_ZIP = "pytorch-zip"
TORCHSCRIPT = "torchscript"
NUMPY_NPZ = "numpy-npz"
KERAS = "keras"

CATEGORIES = {
    ZIP: FormatCategory.CONTAINER,
    PYTORCH_ZIP: FormatCategory.MODEL,
    TORCHSCRIPT: FormatCategory.MODEL,
    NUMPY_NPZ: FormatCategory.MODEL,
    KERAS: FormatCategory.MODEL,
}

# torch.save: <root>/data/<key> holds raw storage bytes, never parsed by the loader.
_STORAGE = re.compile(r"(?:^|/)data/\d+$")
# torch.save bookkeeping records: short text/raw values, never unpickled.
_TORCH_META = re.compile(
    r"(?:^|/)(?:version|byteorder|\.data/version|\.data/serialization_id|"
    r"\.format_version|\.storage_alignment)$"
)
_PICKLE_NAME = re.compile(r"\.(?:pkl|debug_pkl)$")


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def classify(names: list[str]) -> str:
    files = [n.replace("\\", "/") for n in names if not n.endswith(("/", "\\"))]
    if not files:
        return ZIP
    top = {n for n in files if "/" not in n}
    if {"config.json", "metadata.json"} <= top and ("model.weights.h5" in top or "model.weights.npz" in top):
        return KERAS
    has_pickle = any(_PICKLE_NAME.search(n) for n in files)
    has_version = any(_base(n) == "version" for n in files)
    if (
        has_pickle
        and any(re.search(r"(?:^|/)code/", n) for n in files)
        and (has_version or any(_base(n) == "constants.pkl" for n in files))
    ):
        return TORCHSCRIPT
    if any(_base(n) == "data.pkl" for n in files) or (has_pickle and has_version):
        return PYTORCH_ZIP
    if all(n.endswith(".npy") for n in files):
        return NUMPY_NPZ
    return ZIP


def is_torch(flavour: str) -> bool:
    return flavour in (PYTORCH_ZIP, TORCHSCRIPT)


def is_storage_or_meta(name: str) -> bool:
    """Torch records a loader reads as raw bytes: sniffed by content, scanned only if
    something recognises them."""
    normalized = name.replace("\\", "/")
    return bool(_STORAGE.search(normalized) or _TORCH_META.search(normalized))


def is_pickle_member(name: str) -> bool:
    """Torch unpickles these whatever their first bytes are."""
    return bool(_PICKLE_NAME.search(name.replace("\\", "/")))
