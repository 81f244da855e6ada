"""Which video decoder lerobot should use on this machine."""

from __future__ import annotations

import functools


@functools.cache
def torchcodec_loads() -> bool:
    """Whether torchcodec is installed and finds the system FFmpeg libraries it needs.

    lerobot 0.4.4 picks torchcodec whenever the package is installed, even when it cannot
    load a system FFmpeg, and then fails on the first decoded frame; so sir checks first.
    """
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:
        return False
    return True


@functools.cache
def video_backend() -> str:
    """torchcodec when its FFmpeg libraries load, else pyav (which bundles its own FFmpeg)."""
    return "torchcodec" if torchcodec_loads() else "pyav"
