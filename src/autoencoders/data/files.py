"""Dataset files on disk: where they are looked for, md5 verification, and downloading what is missing.

Lookup order for every file: the explicit ``data_dir``, then ``$AUTOENCODERS_DATA``, then the cache folder
(``$AUTOENCODERS_CACHE`` or ``~/.cache/autoencoders``); inside each, ``<root>/<folder>/<file>`` then
``<root>/<file>``. Downloads go to ``<cache>/<folder>/`` through a temporary file renamed into place only
once its md5 is right, so an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.request import urlopen

from autoencoders.data.errors import DataError
from autoencoders.files import atomic_write_bytes

DATA_ENV = "AUTOENCODERS_DATA"
CACHE_ENV = "AUTOENCODERS_CACHE"
_CHUNK = 1 << 20
_VERIFIED_NAME = "verified-md5.json"


def cache_dir() -> Path:
    """The download cache: ``$AUTOENCODERS_CACHE`` or ``~/.cache/autoencoders``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "autoencoders").expanduser()


def search_roots(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """(where it came from, folder) for every root searched, in lookup order."""
    roots = []
    if data_dir is not None:
        roots.append(("data_dir / --data-dir", Path(data_dir).expanduser()))
    if os.environ.get(DATA_ENV):
        roots.append((f"${DATA_ENV}", Path(os.environ[DATA_ENV]).expanduser()))
    roots.append((f"cache (${CACHE_ENV} or ~/.cache/autoencoders)", cache_dir()))
    return roots


def search_folders(folder: str, data_dir: str | Path | None) -> list[Path]:
    """Every folder searched for a dataset's files, in order: ``<root>/<folder>`` then ``<root>``."""
    return [path for _, root in search_roots(data_dir) for path in (root / folder, root)]


def describe_search(folder: str, data_dir: str | Path | None) -> str:
    """The searched folders as one readable line, each with the setting it came from."""
    return "; ".join(f"{label}: {root / folder} and {root}" for label, root in search_roots(data_dir))


def locate(filename: str, folders: list[Path]) -> Path | None:
    """The first ``folder/filename`` that exists; a ``.gz`` file may also be present already decompressed."""
    names = [filename, filename.removesuffix(".gz")] if filename.endswith(".gz") else [filename]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_verified() -> dict[str, str]:
    try:
        return json.loads((cache_dir() / _VERIFIED_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _remember_verified(path: Path, md5: str) -> None:
    """Record a good md5 so the next check of the unchanged file (same size and mtime) is free."""
    verified = _read_verified()
    verified[_verified_key(path)] = md5
    try:
        atomic_write_bytes(cache_dir() / _VERIFIED_NAME, json.dumps(verified, indent=0).encode())
    except OSError:
        pass  # a read-only cache only costs re-hashing next time


def verify_md5(path: Path, expected: str, source: str) -> None:
    """Raise ``DataError`` if ``path`` is not byte-identical (by md5) to the published file at ``source``."""
    if _read_verified().get(_verified_key(path)) == expected:
        return
    actual = file_md5(path)
    if actual != expected:
        raise DataError(
            f"{path} is damaged or incomplete: its md5 is {actual}, expected {expected}. "
            f"Delete it and load again to download a fresh copy, or replace it with the original from {source}"
        )
    _remember_verified(path, actual)


class DownloadFailed(OSError):
    """No mirror delivered the file with the right md5."""


def download(urls: list[str], destination: Path, md5: str) -> None:
    """Fetch the first mirror that works into ``destination``, verified by md5, via a temporary file."""
    reasons = []
    for url in urls:
        print(f"downloading {url} -> {destination}", file=sys.stderr)
        partial = None
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.md5()
            temporary = tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", delete=False)
            with temporary as handle:
                partial = Path(handle.name)
                with urlopen(url, timeout=60) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
            if digest.hexdigest() != md5:
                raise DownloadFailed(f"got md5 {digest.hexdigest()}, expected {md5}")
            partial.chmod(0o644)  # temporary files are private; the data is not
            os.replace(partial, destination)
            _remember_verified(destination, md5)
            return
        except OSError as error:  # URLError, HTTPError, timeouts, a read-only cache, md5 mismatches
            reasons.append(f"{url}: {getattr(error, 'reason', None) or error}")
        finally:
            if partial is not None:
                partial.unlink(missing_ok=True)
    raise DownloadFailed("; ".join(reasons))


def fetch(
    name: str, folder: str, files: dict[str, str], mirrors: tuple[str, ...], data_dir: str | Path | None
) -> dict[str, Path]:
    """Paths of a dataset's files (filename -> md5), found on disk and verified, else downloaded into the cache.

    Raises ``DataError`` for a file that exists but is corrupt, or when missing files cannot be downloaded.
    """
    folders = search_folders(folder, data_dir)
    found: dict[str, Path] = {}
    for filename, md5 in files.items():
        path = locate(filename, folders)
        if path is not None:
            if path.name == filename:  # an already-decompressed copy has no published md5; its reader checks it
                verify_md5(path, md5, mirrors[0] + filename)
            found[filename] = path
    missing = [filename for filename in files if filename not in found]
    target = cache_dir() / folder
    for filename in missing:
        try:
            download([mirror + filename for mirror in mirrors], target / filename, files[filename])
        except DownloadFailed as error:
            raise DataError(
                f"dataset {name!r} needs the files {', '.join(files)}; {', '.join(missing)} were not found and "
                f"downloading failed ({error}). Searched: {describe_search(folder, data_dir)}. "
                f"To fix: put the files in one of those folders and point ${DATA_ENV} (or --data-dir / data_dir=) "
                f"at it, or connect to the internet and run again to download them into {target}"
            ) from error
        found[filename] = target / filename
    return found
