"""The model directory: known models, their official download URLs and checksums.

A model is used only when its SHA-256 is one we know (the official release, or another
verified export of the same weights) or is listed in the directory's own `SHA256SUMS`
(`<sha256>  <file>` lines, as `sha256sum` writes them) for a model you trained or exported
yourself. `fetch` downloads with a size limit, checks the checksum before the file takes its
final name, and never leaves a half-written model behind. `SAFECITY_MODEL_DIR` points the
product at an offline copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from safecity.vision.errors import VisionError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    #: Tried in order; the first is the official release.
    urls: tuple[str, ...]
    #: Checksums of verified files holding these weights (any one is accepted).
    sha256: tuple[str, ...]
    max_bytes: int
    license: str
    description: str


YOLOX_NANO = ModelSpec(
    name="yolox_nano",
    filename="yolox_nano.onnx",
    urls=(
        "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
        "https://raw.githubusercontent.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/"
        "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx",
    ),
    sha256=(
        # Megvii YOLOX release 0.1.1rc0 (exported with PyTorch 1.7).
        "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",
        # The same weights exported with PyTorch 1.10 (Kazuhito00/YOLOX-ONNX-TFLite-Sample).
        "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
    ),
    max_bytes=16 * 1024 * 1024,
    license="Apache-2.0",
    description="YOLOX-Nano COCO-80 object detector, 416x416 input (people and vehicles)",
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (YOLOX_NANO,)
DEFAULT_DETECTOR = YOLOX_NANO.name


def default_model_dir(data_dir: Path | None = None) -> Path:
    """`SAFECITY_MODEL_DIR`, else `<data_dir>/models`."""
    env = os.environ.get("SAFECITY_MODEL_DIR")
    if env:
        return Path(env)
    return (data_dir or Path("var")) / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listed_sums(model_dir: Path) -> dict[str, str]:
    sums = model_dir / "SHA256SUMS"
    out: dict[str, str] = {}
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and len(parts[0]) == 64:
                out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def spec(name: str) -> ModelSpec:
    for s in DEFAULT_MODELS:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in DEFAULT_MODELS)
    raise VisionError(f"unknown model {name!r}; known models: {known}")


def resolve(model_dir: Path, name: str = DEFAULT_DETECTOR) -> Path:
    """The verified file of model `name` in `model_dir`, or an error saying what to do."""
    s = spec(name)
    path = model_dir / s.filename
    if not path.is_file():
        raise VisionError(
            f"model {name} not found at {path}: run `safecity models fetch` (downloads "
            f"{s.filename}) or set SAFECITY_MODEL_DIR to a folder holding it"
        )
    digest = sha256_of(path)
    listed = _listed_sums(model_dir).get(s.filename)
    if digest not in s.sha256 and digest != listed:
        raise VisionError(
            f"{path} has SHA-256 {digest}, which is not a known {name} file; fetch it again "
            f"with `safecity models fetch --force`, or list your own export in "
            f"{model_dir / 'SHA256SUMS'}"
        )
    return path


def fetch(
    model_dir: Path,
    *,
    names: tuple[str, ...] = (DEFAULT_DETECTOR,),
    force: bool = False,
    urls: dict[str, tuple[str, ...]] | None = None,
    timeout_s: float = 60.0,
) -> list[tuple[str, Path, str]]:
    """Download models into `model_dir`, each checked against its known checksums.

    Returns (name, path, what happened). `urls` overrides where a model comes from (an
    internal mirror, or `file://` in tests); the checksum check is the same."""
    model_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, Path, str]] = []
    for name in names:
        s = spec(name)
        dest = model_dir / s.filename
        if dest.is_file() and not force and sha256_of(dest) in s.sha256:
            done.append((name, dest, "already present, checksum ok"))
            continue
        errors: list[str] = []
        for url in (urls or {}).get(name, s.urls):
            try:
                digest = _download(url, dest, s, timeout_s)
            except VisionError as exc:
                errors.append(exc.message)
                continue
            done.append((name, dest, f"downloaded from {url}, sha256 {digest[:12]}… ok"))
            break
        else:
            raise VisionError(f"could not fetch model {name}: " + "; ".join(errors))
    return done


def _download(url: str, dest: Path, s: ModelSpec, timeout_s: float) -> str:
    if not url.startswith(("https://", "http://", "file://")):
        raise VisionError(f"{url}: only https://, http:// and file:// URLs are fetched")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{s.filename}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout_s) as resp,
                os.fdopen(fd, "wb") as out,
            ):
                while chunk := resp.read(1 << 16):
                    size += len(chunk)
                    if size > s.max_bytes:
                        raise VisionError(f"{url}: larger than {s.max_bytes} bytes; refused")
                    h.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError) as exc:
            raise VisionError(f"{url}: {exc}") from None
        digest = h.hexdigest()
        if digest not in s.sha256:
            raise VisionError(
                f"{url}: checksum mismatch (got {digest}, expected one of "
                f"{', '.join(s.sha256)}); the file was not kept"
            )
        shutil.move(str(tmp), dest)
        return digest
    finally:
        tmp.unlink(missing_ok=True)
