"""Which video decoder lerobot should use on this machine."""

from __future__ import annotations

import functools


@functools.cache
def video_backend() -> str:
    """torchcodec when its FFmpeg libraries load, else pyav (which bundles its own FFmpeg).

    lerobot 0.4.4 picks torchcodec whenever the package is installed, even when it cannot
    load a system FFmpeg, and then fails on the first decoded frame; so sir checks first.
    """
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:
        return "pyav"
    return "torchcodec"
