"""Downloads a dataset archive (.zip or .tar.gz) and puts its folder in place in one step.

Everything is written next to its destination first: the archive into a temporary file inside `root`,
its contents into a temporary folder inside `root`. Only a verified archive whose dataset folder has
the expected layout is moved (`os.replace`) to `root/name`; the temporary file and folder are removed
in every case, so an interrupted, truncated or corrupt download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable
from urllib.parse import urlparse

from tqdm import tqdm

from gan_cli.errors import UserError

#: seconds to wait for the server to connect or to send the next bytes
TIMEOUT = 60
CHUNK = 1 << 20


def download_dataset(name: str, url: str, root: str | Path, is_complete: Callable[[Path], bool],
                     layout: str = "the dataset's files", timeout: float = TIMEOUT, sha256: str | None = None) -> Path:
    """Download the archive at `url` and unpack its dataset folder to `root/name`; return that folder.

    The archive holds a top-level folder (normally named `name`; the archive's root itself is accepted
    too) for which `is_complete` is true. `layout` describes the expected contents for error messages.
    Raises UserError when the server cannot be reached, the download is truncated or corrupt, or the
    archive does not hold the expected layout.
    """
    root = Path(root).expanduser().absolute()
    target = root / name
    if target.is_dir() and is_complete(target):
        return target
    if target.exists():
        raise UserError(
            f"{target} exists but does not hold {layout}. Delete it to download the {name} dataset again "
            f"from {url}, or complete it by hand."
        )
    manual = (f"To put it in place by hand, download {url} (on a machine with a network) and unpack it into "
              f"{root}, so that {target} holds {layout}; then run again.")
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise UserError(
            f"Could not download the {name} dataset: the server answered {err.code} {err.reason} for {url}. "
            f"Check data.dataset.url. {manual}"
        ) from err
    except (urllib.error.URLError, OSError, ValueError) as err:  # refused, DNS, timeout, bad URL
        reason = getattr(err, "reason", None) or err
        raise UserError(f"Could not download the {name} dataset from {url} ({reason}). {manual}") from err

    archive = None
    try:
        with response:
            root.mkdir(parents=True, exist_ok=True)
            fd, archive = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".download")
            with os.fdopen(fd, "wb") as file:
                _copy(response, file, name, url, manual)
        return install_archive(Path(archive), name, root, is_complete, layout, url, manual, sha256)
    except OSError as err:
        raise _unwritable(name, root, err) from err
    finally:
        if archive is not None and os.path.exists(archive):
            os.unlink(archive)


def install_archive(archive: Path, name: str, root: Path, is_complete: Callable[[Path], bool], layout: str,
                    source: str, manual: str, sha256: str | None = None) -> Path:
    """Verify `archive` (its SHA-256 when given, its members), unpack it beside `root/name` and move its dataset
    folder there in one step; the archive is deleted and nothing half-unpacked is left in any case."""
    target, unpacked = root / name, None
    try:
        if sha256 is not None and file_sha256(archive) != sha256:
            raise _corrupt(name, source, manual, f"its SHA-256 is {file_sha256(archive)}, not the published {sha256}")
        kind = _archive_kind(source, archive)
        _verify(archive, kind, name, source, manual)
        unpacked = tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".unpack")
        try:
            _extract(archive, kind, Path(unpacked))
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise _corrupt(name, source, manual, f"unpacking failed: {err}") from err
        archive.unlink()  # free the space before the folder is moved
        found = _find_folder(Path(unpacked), name, is_complete)
        if found is None:
            raise UserError(
                f"The archive {source} does not hold the {name} dataset in the expected layout ({layout}); "
                f"nothing was kept in {root}. Unpack the files by hand so that {target} holds {layout}."
            )
        if found == Path(unpacked):
            os.chmod(found, 0o755)  # mkdtemp made it private
        try:
            os.replace(found, target)
        except OSError:
            if target.is_dir() and is_complete(target):  # another process put it in place meanwhile
                return target
            raise
        return target
    except OSError as err:
        raise _unwritable(name, root, err) from err
    finally:
        if archive.exists():
            archive.unlink()
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _unwritable(name: str, root: Path, err: OSError) -> UserError:
    return UserError(
        f"Could not store the {name} dataset in {root} ({err}); nothing was kept. Check that the folder "
        f"is writable and has room for the dataset, or choose another with paths.data_dir=... (or data.root=...).")


def _copy(response, file, name: str, url: str, manual: str) -> None:
    """Copy the body of `response` into `file` with a progress bar; check the byte count."""
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    received = 0
    with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {name}",
              leave=False) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, ValueError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
                raise _truncated(name, url, manual, f"the connection broke after {received} bytes: {err!r}") from err
            if not chunk:
                break
            file.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if expected is not None and received != expected:
        raise _truncated(name, url, manual, f"received {received} of {expected} bytes")


def _truncated(name: str, url: str, manual: str, why: str) -> UserError:
    return UserError(
        f"The download of the {name} dataset from {url} was cut short ({why}); nothing was kept. "
        f"Run again to retry. {manual}"
    )


def _corrupt(name: str, url: str, manual: str, why: str) -> UserError:
    return UserError(
        f"The archive downloaded from {url} for the {name} dataset is corrupt ({why}); nothing was kept. "
        f"Run again to retry. {manual}"
    )


def _archive_kind(url: str, path: Path) -> str:
    """"zip" or "tar", from the URL's ending, else from the file's contents."""
    ending = urlparse(url).path.lower()
    if ending.endswith(".zip"):
        return "zip"
    if ending.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    return "zip" if zipfile.is_zipfile(path) else "tar"


def _unsafe(member: str) -> bool:
    """True for a member name that would land outside the folder it is extracted into."""
    for pure in (PurePosixPath(member), PureWindowsPath(member)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return False


def _verify(path: Path, kind: str, name: str, url: str, manual: str) -> None:
    """The archive opens, every member reads back, and no member would be written outside the folder."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
                if bad is not None:
                    raise _corrupt(name, url, manual, f"the member {bad} fails its checksum")
        else:
            names = []
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    names.append(member.name)
                    if member.islnk() or member.issym():
                        names.append(member.linkname)
                    if member.isfile():
                        with archive.extractfile(member) as data:
                            while data.read(CHUNK):
                                pass
    except UserError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, OSError,
            ValueError, NotImplementedError, RuntimeError) as err:
        raise _corrupt(name, url, manual, str(err) or type(err).__name__) from err
    unsafe = [member for member in names if _unsafe(member)]
    if unsafe:
        raise UserError(
            f"The archive downloaded from {url} for the {name} dataset holds the path {unsafe[0]!r}, which "
            f"would be written outside its folder; it was rejected and nothing was kept. Check "
            f"data.dataset.url: it should point to a trusted dataset archive."
        )
    if not names:
        raise _corrupt(name, url, manual, "the archive is empty")


def _extract(path: Path, kind: str, folder: Path) -> None:
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
    else:
        with tarfile.open(path, "r:*") as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(folder, filter="data")  # refuses links out of the folder, devices, ...
            else:  # Python before 3.10.12 / 3.11.4: names were checked by _verify; write files and folders only
                archive.extractall(folder, members=[m for m in archive.getmembers() if m.isfile() or m.isdir()])


def _find_folder(unpacked: Path, name: str, is_complete: Callable[[Path], bool]) -> Path | None:
    """The dataset folder inside the unpacked archive: `name`, else the only other top-level folder,
    else the archive's root itself."""
    candidates = [unpacked / name]
    candidates += sorted(p for p in unpacked.iterdir()
                         if p.is_dir() and p.name != name and not p.name.startswith((".", "__MACOSX")))
    candidates.append(unpacked)
    for folder in candidates:
        if folder.is_dir() and is_complete(folder):
            return folder
    return None
