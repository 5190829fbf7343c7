"""Reading and writing the user's files: .npz inputs and outputs, written atomically."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ir.errors import InputError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that the file appears complete or not at all.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over
    `path`; on any error or interrupt the temporary file is removed.

    Raises:
        InputError: the file cannot be written (no such folder, no permission, disk full, ...).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise InputError(f"cannot write '{target}': {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise InputError(f"cannot write '{target}': {error.strerror or error}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays keyed by name as an uncompressed .npz, atomically and deterministically."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in arrays:
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, entry.getvalue())
    atomic_write_bytes(path, buffer.getvalue())


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a .npz file by name; a missing or malformed file is an InputError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None
