"""Names a file, a zip member, a layer or a sheet may take in the tools people open them with.

Windows refuses `<>:"/\\|?*` and control characters in a file name, a name ending in a dot or a
space, and the device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9) whatever their extension.
Excel refuses a sheet name over 31 characters, one holding `:\\/?*[]`, one that starts or
ends with an apostrophe, and "History", which it keeps for itself."""
from __future__ import annotations

import re
import unicodedata

STEM = "export"  # a file's stem when nothing better is known
MAX_STEM = 100  # characters: a dataset id's length, and far within Windows' 255 a file name
_UNSAFE_FILE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
MAX_SHEET = 31
_UNSAFE_SHEET = re.compile(r"[:\\/?*\[\]\x00-\x1f\x7f]+")


def file_stem(name: str | None) -> str:
    """`name` as a file's stem safe on Windows, macOS and Linux (`export` when nothing is left)."""
    stem = _UNSAFE_FILE.sub("_", unicodedata.normalize("NFC", name or ""))[:MAX_STEM].rstrip(". ").lstrip(" ")
    if not stem:
        return STEM
    if stem.split(".")[0].lower() in _DEVICES:
        stem = f"{stem}_"
    return stem


def sheet_name(name: str | None, number: int = 1) -> str:
    """An Excel sheet's name after `name`; the sheets after the first get " (2)", " (3)", …
    within the 31 characters. Without a name: Sheet1, Sheet2, … as Excel names them."""
    base = _UNSAFE_SHEET.sub("_", name or "").strip().strip("'").strip()
    if not base:
        return f"Sheet{number}"
    if base.lower() == "history":
        base = f"{base}_"
    suffix = f" ({number})" if number > 1 else ""
    return base[:MAX_SHEET - len(suffix)].rstrip().rstrip("'") + suffix
