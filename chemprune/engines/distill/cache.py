"""A memory cache of the teacher's outputs per training example.

Word-level distillation runs the frozen teacher on every batch; when the same examples come
back (later epochs), their teacher logits can be looked up instead. :class:`TeacherCache` keeps
them per example key (any ``bytes``, e.g. the example's token ids), either all of them or only
the ``top_k`` largest per row (the rest count as probability 0), in ``float16`` by default, up
to ``max_bytes``. :meth:`TeacherCache.dense` turns cached rows back into a ``(rows, classes)``
logit tensor with ``-inf`` outside the stored entries, which
:func:`~chemprune.engines.distill.soft_target.soft_target_kl` accepts.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TeacherCache"]


class TeacherCache:
    """Teacher logits per example key.

    Args:
        top_k: keep only the ``top_k`` largest logits of each row (``None``: all).
        dtype: storage precision of the logits.
        max_bytes: stop adding entries beyond this much stored data (``None``: no limit).
    """

    def __init__(
        self,
        *,
        top_k: int | None = None,
        dtype: torch.dtype = torch.float16,
        max_bytes: int | None = 2 << 30,
    ) -> None:
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.top_k = top_k
        self.dtype = dtype
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.full = False
        self._items: dict[bytes, tuple[Tensor | None, Tensor]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def put(self, key: bytes, logits: Tensor) -> bool:
        """Store ``logits`` (``(rows, classes)``) for ``key``; False when the cache is full."""
        if key in self._items:
            return True
        logits = logits.detach()
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            values, index = logits.topk(self.top_k, dim=-1)
            entry: tuple[Tensor | None, Tensor] = (
                index.to(torch.int16 if logits.shape[-1] < 2**15 else torch.int32).cpu(),
                values.to(self.dtype).cpu(),
            )
        else:
            entry = (None, logits.to(self.dtype).cpu())
        size = sum(t.numel() * t.element_size() for t in entry if t is not None)
        if self.max_bytes is not None and self.nbytes + size > self.max_bytes:
            self.full = True
            return False
        self._items[key] = entry
        self.nbytes += size
        return True

    def get(self, key: bytes) -> tuple[Tensor | None, Tensor] | None:
        """``(index or None, logits)`` as stored, or None; counts hits and misses."""
        entry = self._items.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def dense(self, key: bytes, classes: int, *, count: bool = True) -> Tensor | None:
        """The cached rows as float32 ``(rows, classes)`` logits (``-inf`` where not stored);
        ``count=False`` leaves the hit/miss counts alone."""
        entry = self.get(key) if count else self._items.get(key)
        if entry is None:
            return None
        index, values = entry
        if index is None:
            return values.float()
        out = torch.full((values.shape[0], classes), float("-inf"))
        return out.scatter_(1, index.long(), values.float())

    def stats(self) -> dict:
        return {
            "entries": len(self._items),
            "bytes": self.nbytes,
            "hits": self.hits,
            "misses": self.misses,
            "full": self.full,
            "top_k": self.top_k,
        }

    def __repr__(self) -> str:
        return (
            f"TeacherCache(top_k={self.top_k}, dtype={self.dtype}, entries={len(self)}, "
            f"bytes={self.nbytes})"
        )
