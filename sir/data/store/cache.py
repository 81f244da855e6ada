"""Camera frames decoded once, kept as uint8, served without decoding.

Decoding a video window per sample, as ``LeRobotDataset`` does, caps a camera dataset at a
few hundred samples a second, too few to keep a GPU busy. ``cache_frames`` decodes each
episode's frames once instead, with lerobot's own ``decode_video_frames`` asked for every
frame of the episode (one sequential pass), and keeps them as uint8 arrays ``[T, C, H, W]``:
in memory up to a budget, and beyond it in ``.npy`` files on disk, read through memory maps.

A served frame equals lerobot's exactly: lerobot returns ``uint8 / 255`` as float32, and
``round(x * 255)`` recovers the uint8 from that float without loss, so storing uint8 and
dividing again gives the same bits.

The disk cache lives in ``~/.cache/sir/frames/<repo_id>/<camera>/`` (or ``cache_dir``), one
file per episode named by a digest of what its frames come from: the video file's bytes,
the episode's place in it, its frame timestamps, and the decoder. A dataset that changes
gets new names, so it is never served stale frames; the stale file of that episode is
removed when the new one is written. Files are written whole or not at all (a temporary
name, then a rename; see ``sir.atomic``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sir.atomic import remove_leftovers, temporary_path
from sir.errors import UserError

FORMAT = "sir-frames-1"  # part of every digest: a change of layout invalidates old files
DECODE_CHUNK_BYTES = 64 << 20  # float32 frames lerobot returns per call, at most


def default_budget_bytes() -> int:
    """A quarter of the machine's memory: frames are shared with DataLoader workers (forked
    processes share the pages), but the model, batches and the workers need the rest."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sir" / "frames"


@dataclass
class CacheReport:
    """What ``cache_frames`` did, in bytes of uint8 frames and episodes per place."""

    in_memory: int = 0
    on_disk: int = 0
    decoded: int = 0  # episodes decoded now (the rest came from the disk cache)
    episodes: int = 0
    folders: set[Path] = field(default_factory=set)

    def add(self, other: CacheReport) -> None:
        self.in_memory += other.in_memory
        self.on_disk += other.on_disk
        self.decoded += other.decoded
        self.episodes += other.episodes
        self.folders |= other.folders

    def line(self) -> str:
        where = f" in {', '.join(sorted(str(f) for f in self.folders))}" if self.folders else ""
        return (f"Camera frames: {self.episodes} episode videos cached, {_size(self.in_memory)} in memory, "
                f"{_size(self.on_disk)} on disk{where} ({self.decoded} decoded now, the rest read from disk).")


def _size(n: int) -> str:
    return f"{n / (1 << 30):.2f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MB"


class CameraFrames:
    """uint8 frames per (camera key, episode): numpy arrays, or memory-mapped ``.npy`` files."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self._files: dict[tuple[str, int], Path] = {}

    def __contains__(self, key_episode: tuple[str, int]) -> bool:
        return key_episode in self._arrays or key_episode in self._files

    def keep(self, key: str, episode: int, frames: np.ndarray) -> None:
        self._arrays[(key, episode)] = frames
        self._files.pop((key, episode), None)

    def map(self, key: str, episode: int, path: Path) -> None:
        self._files[(key, episode)] = path
        self._arrays.pop((key, episode), None)

    def get(self, key: str, episode: int, positions: np.ndarray) -> torch.Tensor:
        """Frames at ``positions`` within the episode, as lerobot returns them: float32 in [0, 1]."""
        return to_float(self.uint8(key, episode, positions))

    def uint8(self, key: str, episode: int, positions: np.ndarray) -> np.ndarray:
        """The stored uint8 frames at ``positions`` (any shape of positions) within the episode."""
        frames = self._arrays.get((key, episode))
        if frames is None:  # opened here, lazily, so that each worker process maps the file itself
            frames = self._arrays[(key, episode)] = np.load(self._files[(key, episode)], mmap_mode="r")
        return frames[positions]

    def __getstate__(self) -> dict:
        # A memory map pickles as a full copy: spawned workers map the files again instead.
        arrays = {k: v for k, v in self._arrays.items() if not isinstance(v, np.memmap)}
        return {"_arrays": arrays, "_files": dict(self._files)}


def to_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames as lerobot serves them: float32 ``x / 255``, bit for bit (a float32
    division is correctly rounded in numpy as in torch). numpy's, because torch's runs on
    its intra-op threads, which on a loaded machine made a batch's conversion ten times slower."""
    return torch.from_numpy(np.divide(frames, np.float32(255), dtype=np.float32))


@dataclass
class EpisodeVideo:
    """Where one episode's frames of one camera come from."""

    key: str
    episode: int
    path: Path
    from_timestamp: float
    timestamps: np.ndarray  # float32, the episode's frames in order, as in the data files
    frame_values: int  # values in one frame (height x width x channels), to bound memory while decoding


def cache_frames(
    repo_id: str,
    videos: Iterable[EpisodeVideo],
    frames: CameraFrames,
    *,
    budget_bytes: int,
    cache_dir: Path,
    backend: str,
    tolerance_s: float,
    progress: Callable[[EpisodeVideo], None] | None = None,
) -> CacheReport:
    """Fill ``frames`` with every episode of ``videos``: in memory while ``budget_bytes``
    lasts, then on disk under ``cache_dir/repo_id``. An episode already cached on disk is read
    from there, not decoded again."""
    report = CacheReport()
    digests: dict[Path, str] = {}
    for video in videos:
        if video.path not in digests:
            digests[video.path] = file_digest(video.path)
        folder = cache_dir / repo_id / video.key
        cached = folder / f"ep{video.episode:06d}-{episode_digest(video, digests[video.path], backend)}.npy"
        if cached.is_file():
            array = np.load(cached, mmap_mode="r")
        else:
            array = decode_episode(repo_id, video, backend, tolerance_s)
            report.decoded += 1
        if array.nbytes <= budget_bytes - report.in_memory:
            # A file from the disk cache is read whole into memory.
            frames.keep(video.key, video.episode, np.array(array) if isinstance(array, np.memmap) else array)
            report.in_memory += array.nbytes
        else:
            if not isinstance(array, np.memmap):
                write_npy(cached, array)
            frames.map(video.key, video.episode, cached)
            report.on_disk += array.nbytes
            report.folders.add(folder)
        report.episodes += 1
        if progress is not None:
            progress(video)
    return report


def decode_episode(repo_id: str, video: EpisodeVideo, backend: str, tolerance_s: float) -> np.ndarray:
    """Every frame of the episode, uint8 ``[T, C, H, W]``, decoded by lerobot as
    ``LeRobotDataset`` decodes them (same timestamps, tolerance and backend)."""
    from lerobot.datasets.video_utils import FrameTimestampError, decode_video_frames

    # The same float arithmetic as FrameStore: timestamps read as float32, then shifted.
    timestamps = [video.from_timestamp + float(t) for t in video.timestamps]
    chunk = max(1, DECODE_CHUNK_BYTES // (4 * max(1, video.frame_values)))
    parts: list[np.ndarray] = []
    try:
        for start in range(0, len(timestamps), chunk):
            decoded = decode_video_frames(video.path, timestamps[start:start + chunk], tolerance_s, backend)
            parts.append(decoded.mul_(255).round_().to(torch.uint8).numpy())
    except FrameTimestampError as err:
        raise UserError(
            f"Dataset '{repo_id}': the video {video.path} has no frame within {tolerance_s} s of some timestamps of "
            f"episode {video.episode} ({video.key}); lerobot cannot read that episode either."
        ) from err
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` whole or not at all, and drop the episode's stale files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path.parent)
    tmp = temporary_path(path)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype, shape=array.shape)
        out[...] = array
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    episode = path.name.split("-", 1)[0]
    for stale in path.parent.glob(f"{episode}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def episode_digest(video: EpisodeVideo, file_hash: str, backend: str) -> str:
    """Names the frames by everything they depend on: file, place in it, timestamps, decoder
    (torchcodec and pyav convert colours with different code)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (FORMAT, file_hash, repr(float(video.from_timestamp)), backend):
        digest.update(part.encode() + b"\0")
    digest.update(np.ascontiguousarray(video.timestamps, dtype=np.float32).tobytes())
    return digest.hexdigest()
