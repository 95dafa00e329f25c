"""Where the app runs: locally, on a Hugging Face Space, or on a ZeroGPU Space.

The app wraps its inference function with `gpu_decorator`; on ZeroGPU that is `spaces.GPU`
(a GPU is attached only while the function runs), everywhere else it changes nothing.
"""
from __future__ import annotations

import os
from typing import Callable

TRUE_VALUES = ("1", "t", "true", "yes")


def on_space() -> bool:
    """Spaces set SPACE_ID (``user/name``) in every Space's environment."""
    return bool(os.environ.get("SPACE_ID"))


def on_zero_gpu() -> bool:
    """ZeroGPU Spaces set SPACES_ZERO_GPU=true; the `spaces` package reads the same variable."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in TRUE_VALUES


def _no_op_gpu(func: Callable | None = None, **_options):
    """Accepts both `@gpu_decorator` and `@gpu_decorator(duration=30)`, like `spaces.GPU`."""
    if func is None:
        return lambda inner: inner
    return func


def _pick_gpu_decorator() -> Callable:
    if not on_zero_gpu():
        return _no_op_gpu
    try:
        import spaces  # preinstalled on ZeroGPU Spaces; must be imported before CUDA is touched
    except ImportError:
        return _no_op_gpu
    return spaces.GPU


gpu_decorator = _pick_gpu_decorator()
