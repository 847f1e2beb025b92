"""Downloading named translation datasets from a local HTTP server: unpacked in one step, verified, and
nothing left behind when the download is cut short, corrupt, unsafe or impossible."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_cli.data.download import download_dataset
from gan_cli.data.translation import PairedFolder, UnpairedFolders
from gan_cli.errors import UserError


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _unpaired_files(name: str) -> dict[str, bytes]:
    """CycleGAN's layout under a top-level folder, as in the authors' .zip files."""
    files = {}
    for sub, count in (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 1)):
        for i in range(count):
            files[f"{name}/{sub}/{i}.png"] = _png(np.full((8, 8, 3), 40 * i, dtype=np.uint8))
    return files


def _paired_files(name: str) -> dict[str, bytes]:
    """pix2pix's layout under a top-level folder, as in the authors' .tar.gz files (no test/ split)."""
    files = {}
    for sub, count in (("train", 2), ("val", 1)):
        for i in range(count):
            files[f"{name}/{sub}/{i}.png"] = _png(np.full((8, 16, 3), 50 * i, dtype=np.uint8))
    return files


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Server:
    """Serves `routes` {path: (body, declared length or None)} on 127.0.0.1 and counts the requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int | None]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)  # a declared length above len(body): the connection closes early
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, length: int | None = None) -> str:
        self.routes[path] = (body, length)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = _Server()
    yield srv
    srv.close()


def _left_behind(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_unpaired_download_then_reuse(server, tmp_path):
    url = server.add("/cyclegan/tiny2zebra.zip", _zip(_unpaired_files("tiny2zebra")))
    root = tmp_path / "data"
    train = UnpairedFolders(str(root), "train", name="tiny2zebra", url=url, download=True)
    assert (len(train.files_A), len(train.files_B), len(train)) == (3, 2, 3)
    item = train[0]
    assert item["A"].size == (8, 8) and item["A"].mode == "RGB"
    assert _left_behind(root) == ["tiny2zebra"]  # no temporary file or folder
    test = UnpairedFolders(str(root), "test", name="tiny2zebra", url=url, download=True)
    assert len(test) == 1
    assert server.hits["/cyclegan/tiny2zebra.zip"] == 1  # the second and third use found the folder


def test_paired_download_then_reuse(server, tmp_path):
    url = server.add("/pix2pix/tinyfacades.tar.gz", _tar_gz(_paired_files("tinyfacades")))
    root = tmp_path / "data"
    train = PairedFolder(str(root), "train", name="tinyfacades", url=url, download=True)
    assert len(train) == 2 and train[1]["A"].size == (8, 8) and train[1]["B"].size == (8, 8)
    test = PairedFolder(str(root), "test", name="tinyfacades", url=url, download=True)
    assert test.split == "val" and len(test) == 1  # no test/: falls back to val/
    assert _left_behind(root) == ["tinyfacades"]
    assert server.hits["/pix2pix/tinyfacades.tar.gz"] == 1


def test_archive_without_top_level_folder(server, tmp_path):
    files = {name.split("/", 1)[1]: data for name, data in _unpaired_files("x").items()}
    url = server.add("/flat.zip", _zip(files))
    dataset = UnpairedFolders(str(tmp_path), name="flat", url=url, download=True)
    assert len(dataset) == 3 and _left_behind(tmp_path) == ["flat"]


def test_truncated_download_keeps_nothing(server, tmp_path):
    body = _zip(_unpaired_files("cut"))
    url = server.add("/cut.zip", body[: len(body) // 2], length=len(body))
    root = tmp_path / "data"
    with pytest.raises(UserError, match="cut short") as info:
        UnpairedFolders(str(root), name="cut", url=url, download=True)
    assert url in str(info.value) and "nothing was kept" in str(info.value)
    assert _left_behind(root) == []


def test_corrupt_archive_keeps_nothing(server, tmp_path):
    url = server.add("/broken.zip", b"<html>this is not a zip file</html>" * 20)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="corrupt") as info:
        UnpairedFolders(str(root), name="broken", url=url, download=True)
    assert "nothing was kept" in str(info.value)
    assert _left_behind(root) == []


def test_corrupt_tar_member_keeps_nothing(server, tmp_path):
    body = bytearray(_tar_gz(_paired_files("rotten")))
    body[len(body) // 2] ^= 0xFF  # a flipped byte in the middle of the gzip stream
    url = server.add("/rotten.tar.gz", bytes(body))
    with pytest.raises(UserError, match="corrupt"):
        PairedFolder(str(tmp_path), name="rotten", url=url, download=True)
    assert _left_behind(tmp_path) == []


def test_wrong_layout_keeps_nothing(server, tmp_path):
    url = server.add("/other.zip", _zip({"other/readme.txt": b"no images here"}))
    with pytest.raises(UserError, match="expected layout") as info:
        UnpairedFolders(str(tmp_path), name="other", url=url, download=True)
    assert "trainA/" in str(info.value)
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_member_outside_the_folder_is_rejected(server, tmp_path, kind):
    files = {**_unpaired_files("evil"), "../escaped.txt": b"gotcha"}
    url = server.add(f"/evil.{kind}", _zip(files) if kind == "zip" else _tar_gz(files))
    root = tmp_path / "data"
    with pytest.raises(UserError, match="outside its folder"):
        UnpairedFolders(str(root), name="evil", url=url, download=True)
    assert _left_behind(root) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_http_error_names_the_url(server, tmp_path):
    url = server.base + "/missing.zip"
    with pytest.raises(UserError, match="404") as info:
        UnpairedFolders(str(tmp_path / "data"), name="missing", url=url, download=True)
    assert url in str(info.value)
    assert not (tmp_path / "data").exists()


def test_no_network_says_where_to_unpack_by_hand(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cyclegan/datasets/horse2zebra.zip"
    root = tmp_path / "data"
    with pytest.raises(UserError) as info:
        UnpairedFolders(str(root), name="horse2zebra", url=url, download=True)
    message = str(info.value)
    assert url in message and str(root.resolve() / "horse2zebra") in message
    assert "trainA/" in message and "unpack" in message
    assert not root.exists()


def test_named_set_without_download_names_the_url(tmp_path):
    url = "http://example.invalid/pix2pix/datasets/facades.tar.gz"
    with pytest.raises(UserError, match="download=true") as info:
        PairedFolder(str(tmp_path), name="facades", url=url, download=False)
    assert url in str(info.value) and str(tmp_path.resolve() / "facades") in str(info.value)


def test_download_dataset_returns_the_folder(server, tmp_path):
    url = server.add("/direct.tar.gz", _tar_gz(_paired_files("direct")))
    folder = download_dataset("direct", url, tmp_path, lambda p: (p / "train").is_dir(), layout="train/")
    assert folder == tmp_path.absolute() / "direct" and sorted(p.name for p in folder.iterdir()) == ["train", "val"]


def test_download_dataset_refuses_an_incomplete_folder(server, tmp_path):
    url = server.add("/half.tar.gz", _tar_gz(_paired_files("half")))
    (tmp_path / "half" / "val").mkdir(parents=True)
    with pytest.raises(UserError, match="exists but does not hold"):
        download_dataset("half", url, tmp_path, lambda p: (p / "train").is_dir(), layout="train/")
    assert server.hits.get("/half.tar.gz") is None and _left_behind(tmp_path) == ["half"]
