"""A row's image values -> bytes: paths (relative to ``image_root``, bounded, never following a
path outside it), HF ``{bytes, path}`` structs, raw bytes, base64 text and ``data:`` URIs (as
evaluation kits ship them), lists of those (or a list written as text); Git LFS pointer files are
named as such. Images are read as bytes, bounded in size, and not decoded: the validate stage does that.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from curation.sources.paths import MISSING
from curation.rejects import Refused
from curation.sources.rowerrors import absent


def images_of(value: Any, base: Path, root: Path, s: dict, theirs: str, record: dict) -> list[dict]:
    if value is MISSING or value is None:
        why = "no image" if value is None else absent("image", theirs, value, record)
        raise Refused("missing_image", why)
    if isinstance(value, str) and value.lstrip().startswith("[") and value.rstrip().endswith("]"):
        value = _list_text(value)  # VLMEvalKit writes a row's several images as the text of a list
    many = isinstance(value, (list, tuple))
    values = list(value) if many else [value]
    if not values:
        raise Refused("missing_image", "the image list is empty")
    images = []
    for i, item in enumerate(values):
        try:
            data, path = _image(item, base, root, s)
        except Refused as r:
            if many and len(values) > 1:
                r.detail = f"image {i} of {len(values)}: {r.detail}"
            raise
        images.append({"bytes": data, "path": path})
    return images


def _image(value: Any, base: Path, root: Path, s: dict) -> tuple[bytes, str | None]:
    """One image's bytes and a path hint, from bytes, an HF ``{bytes, path}`` struct or a path."""
    if value is None:
        raise Refused("missing_image", "no image")
    path = None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data and not isinstance(data, (bytes, bytearray, memoryview)):
            raise Refused("bad_image_value", f"image bytes are a {type(data).__name__}")
        if data:
            return _bounded(_not_a_pointer(bytes(data), "the image bytes"), s), _path_hint(path)
        if not path:
            raise Refused("missing_image", "image struct has neither bytes nor path")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if not value:
            raise Refused("missing_image", "image bytes are empty")
        return _bounded(_not_a_pointer(bytes(value), "the image bytes"), s), None
    elif isinstance(value, str):
        if (data := _inline_image(value)) is not None:
            return _bounded(_not_a_pointer(data, "the inline image"), s), None
        path = value
    else:
        raise Refused("bad_image_value", f"image is a {type(value).__name__}; expected a path, "
                                        "{bytes, path}, bytes or a list of those")
    if not isinstance(path, str) or not path.strip() or "\x00" in path or _path_hint(path) is None:
        raise Refused("bad_image_value", f"image path {path!r}")
    return _read_file(path, base, root, s), path


def _path_hint(path: Any) -> str | None:
    """The struct's ``path`` kept as a name hint when it is text a Parquet file can store."""
    if not isinstance(path, str):
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return path


def _bounded(data: bytes, s: dict) -> bytes:
    if len(data) > s["max_image_bytes"]:
        raise Refused("image_too_large_bytes", f"{len(data)} bytes > max_image_bytes={s['max_image_bytes']}")
    return data


_BASE64_IMAGE = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "Qk")  # PNG, JPEG, GIF, WEBP, BMP
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_LFS = b"version https://git-lfs.github.com/spec/"


def _inline_image(text: str) -> bytes | None:
    """The bytes of a ``data:`` URI or of a base64 string (VLMEvalKit TSVs), None for a path."""
    head = text[:64].lstrip()
    if head.startswith("data:"):
        meta, sep, payload = text.strip().partition(",")
        if not sep or ";base64" not in meta:
            raise Refused("bad_image_value", f"a data: URI that is not base64 ({meta[:40]!r})")
        return _b64(payload)
    long_or_magic = len(text) > 1024 or (len(text) > 64 and head.startswith(_BASE64_IMAGE))
    if long_or_magic and _BASE64_TEXT.fullmatch(text[:4096]):
        return _b64(text)
    return None


def _b64(payload: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refused("bad_image_value", f"base64 image text that does not decode: {e}") from None


def _list_text(text: str) -> Any:
    """``"['a.jpg', 'b.jpg']"`` -> a list (literals only: never evaluated as code)."""
    import ast

    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # a path that happens to start with "[": read as one
    return value if isinstance(value, list) else text


def _not_a_pointer(data: bytes, what: str) -> bytes:
    if data.startswith(_LFS):
        raise Refused("image_lfs_pointer", f"{what} is a Git LFS pointer ({len(data)} bytes), not an image: "
                                          "fetch the files with git lfs pull")
    return data


def _read_file(path: str, base: Path, root: Path, s: dict) -> bytes:
    if "\\" in path and os.sep == "/" and not Path(path).exists():
        path = path.replace("\\", "/")  # a Windows-made path ("images\\1.jpg") on a POSIX system
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(os.path.normpath(base / p))
        inside = os.path.commonpath([str(p), os.path.normpath(root)]) == os.path.normpath(root)
        if not inside and not s["allow_outside"]:
            raise Refused("image_path_outside",
                         f"{path} resolves outside {root} (set image_root or allow_outside)")
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise Refused("image_missing", f"no file {p}") from None
    except OSError as e:
        raise Refused("image_unreadable", f"{p}: {e}") from None
    if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO (which would block), a device
        raise Refused("image_unreadable", f"{p} is not a regular file")
    limit = s["max_image_bytes"]
    if st.st_size > limit:
        raise Refused("image_too_large_bytes", f"{p}: {st.st_size} bytes > max_image_bytes={limit}")
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise Refused("image_unreadable", f"{p}: {e}") from None
    if data.startswith(_LFS):
        raise Refused("image_lfs_pointer", f"{p} is a Git LFS pointer ({len(data)} bytes), not an image: "
                                          "fetch the files with git lfs pull")
    return _bounded(data, s)
