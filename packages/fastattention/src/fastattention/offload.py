"""CPU-GPU cooperation for long context (FastAttention §4.2): a KV cache split between device and host
memory under a budget, with attention over each part merged exactly by log-sum-exp.

* :class:`OffloadedKVCache` appends keys/values to device memory until ``device_budget_bytes`` is
  reached and spills the rest to host memory (pinned when the device is CUDA).
* :func:`offloaded_attention` computes attention over the device part, and over the host part chunk by
  chunk; the partial results (O_i, LSE_i) are merged with :func:`fastattention.lse_merge`:
  ``L = log(e^L1 + e^L2)``, ``O = e^(L1 - L) O1 + e^(L2 - L) O2``.

  - ``mode="stream"``: each host chunk is copied to the device while the previous chunk is being
    computed (a side CUDA stream on a GPU; a one-thread prefetcher on the CPU), so transfers hide
    behind compute;
  - ``mode="host"``: the host part is computed by the CPU itself (a worker thread, tiled torch
    backend) while the device computes its part; only [b, h, Lq, d] results cross the bus.

  On a CPU-only machine the "device" is the CPU and the budget is simulated; the arithmetic and the
  overlap machinery are the same. Positions: the device part holds keys ``[0, n_dev)`` and the host
  part ``[n_dev, n)``; masks are bottom-right aligned over the whole cache.

Inference only (no autograd), as in the paper.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from fastattention.api import attention
from fastattention.config import TilingConfig
from fastattention.functional import lse_merge
from fastattention.masks import make_mask


@dataclass
class OffloadStats:
    """What one :func:`offloaded_attention` call did (bytes, chunks, seconds)."""

    device_keys: int = 0
    host_keys: int = 0
    chunks: int = 0
    skipped_chunks: int = 0
    bytes_transferred: int = 0
    wait_s: float = 0.0  # time the device waited for a transfer (or for the CPU worker)
    total_s: float = 0.0


class OffloadedKVCache:
    """A KV cache split between device memory (up to a byte budget) and host memory.

    Args:
        device_budget_bytes: bytes of K + V allowed on the device.
        device: where attention runs ("cuda", or "cpu" to simulate).
        pin_memory: pin the host part (default: True when ``device`` is CUDA).

    Example:
        >>> cache = OffloadedKVCache(device_budget_bytes=2 * 1024 * 64 * 4, device="cpu")
        >>> cache.append(torch.randn(1, 1, 3000, 64), torch.randn(1, 1, 3000, 64))
        >>> cache.device_len, cache.host_len
        (1024, 1976)
    """

    def __init__(self, device_budget_bytes: int, device: torch.device | str = "cpu", pin_memory: bool | None = None):
        if not isinstance(device_budget_bytes, int) or device_budget_bytes < 0:
            raise ValueError(f"OffloadedKVCache: device_budget_bytes must be an int >= 0, got {device_budget_bytes!r}")
        self.budget = device_budget_bytes
        self.device = torch.device(device)
        self.pin = self.device.type == "cuda" if pin_memory is None else pin_memory
        self._dev: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._host: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.device_len = self.host_len = 0
        self._bytes_per_pos: int | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append [b, hk, t, d] keys/values: to the device while the budget allows, the rest to the host."""
        if k.dim() != 4 or v.dim() != 4 or k.shape[:3] != v.shape[:3]:
            raise ValueError(f"OffloadedKVCache.append: expected k, v [b, hk, t, d] of equal [b, hk, t], got "
                             f"{tuple(k.shape)}, {tuple(v.shape)}")
        per_pos = (k[:, :, :1].numel() * k.element_size()) + (v[:, :, :1].numel() * v.element_size())
        if self._bytes_per_pos not in (None, per_pos):
            raise ValueError(f"OffloadedKVCache.append: bytes per position changed from {self._bytes_per_pos} to {per_pos}")
        self._bytes_per_pos = per_pos
        room = 0 if self.host_len else max(0, self.budget // per_pos - self.device_len)  # keep positions ordered
        n_dev = min(room, k.shape[2])
        if n_dev:
            self._dev.append((k[:, :, :n_dev].to(self.device), v[:, :, :n_dev].to(self.device)))
            self.device_len += n_dev
        if n_dev < k.shape[2]:
            kh, vh = k[:, :, n_dev:].to("cpu"), v[:, :, n_dev:].to("cpu")
            if self.pin:
                kh, vh = kh.pin_memory(), vh.pin_memory()
            self._host.append((kh, vh))
            self.host_len += k.shape[2] - n_dev

    @staticmethod
    def _cat(parts):
        if not parts:
            return None, None
        if len(parts) > 1:
            parts[:] = [(torch.cat([p[0] for p in parts], 2), torch.cat([p[1] for p in parts], 2))]
        return parts[0]

    @property
    def device_kv(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self._cat(self._dev)

    @property
    def host_kv(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self._cat(self._host)

    @property
    def nbytes_device(self) -> int:
        return self.device_len * (self._bytes_per_pos or 0)

    @property
    def nbytes_host(self) -> int:
        return self.host_len * (self._bytes_per_pos or 0)

    def attention(self, q: torch.Tensor, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """:func:`offloaded_attention` of ``q`` over the whole cache."""
        kd, vd = self.device_kv
        kh, vh = self.host_kv
        return offloaded_attention(q.to(self.device), kd, vd, kh, vh, **kwargs)


def offloaded_attention(
    q: torch.Tensor, k_dev: torch.Tensor | None, v_dev: torch.Tensor | None, k_host: torch.Tensor | None,
    v_host: torch.Tensor | None, *, chunk: int = 8192, causal: bool = False, scale: float | None = None,
    window: int | tuple[int, int] | None = None, mode: str = "stream", backend: str = "auto",
    tiling: TilingConfig | None = None, return_lse: bool = False, stats: OffloadStats | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact attention over keys split between device (first ``n_dev`` positions) and host memory.

    Args:
        q: [b, h, Lq, d] on the device.
        k_dev, v_dev: [b, hk, n_dev, d] on the device (or None); k_host, v_host: [b, hk, n_host, d] in host
            memory (or None).
        chunk: host keys per transfer / per partial attention.
        causal, scale, window, backend, tiling: as in :func:`fastattention.attention`; masks are aligned
            at the bottom right of the whole cache (n_dev + n_host keys).
        mode: "stream" (copy host chunks to the device, prefetching the next while computing) or "host"
            (the CPU computes the host part concurrently with the device part).
        return_lse: also return the merged log-sum-exp.
        stats: optional :class:`OffloadStats` filled in place.

    Paper: FastAttention §4.2 (CPU-GPU cooperative strategy).
    """
    if mode not in ("stream", "host"):
        raise ValueError(f"offloaded_attention: mode must be 'stream' or 'host', got {mode!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"offloaded_attention: chunk must be a positive int, got {chunk!r}")
    if (k_dev is None) != (v_dev is None) or (k_host is None) != (v_host is None) or (k_dev is None and k_host is None):
        raise ValueError("offloaded_attention: give k and v together for each part, and at least one part")
    st = stats if stats is not None else OffloadStats()
    t_start = time.perf_counter()
    n_dev = 0 if k_dev is None else k_dev.shape[2]
    n_host = 0 if k_host is None else k_host.shape[2]
    lq, n = q.shape[2], n_dev + n_host
    off = n - lq  # key position of query 0 over the whole cache
    mask = make_mask(causal, window, None)
    k_lo, k_hi = mask.kv_range(0, lq, n, off)  # keys any query can see
    kw = dict(causal=causal, scale=scale, window=window, tiling=tiling, return_lse=True)
    st.device_keys, st.host_keys = n_dev, n_host
    b, h, _, dv = q.shape[0], q.shape[1], None, (v_dev if v_dev is not None else v_host).shape[-1]
    o = torch.zeros(b, h, lq, dv, dtype=q.dtype, device=q.device)
    lse = torch.full((b, h, lq), float("-inf"), dtype=torch.float32, device=q.device)
    chunks = [(c0, min(c0 + chunk, n_host)) for c0 in range(0, n_host, chunk)]
    visible = [(c0, c1) for c0, c1 in chunks if n_dev + c1 > k_lo and n_dev + c0 < k_hi]
    st.skipped_chunks = len(chunks) - len(visible)
    st.chunks = len(visible)

    def host_part_on_cpu():
        qh = q.to("cpu")
        oh = torch.zeros(b, h, lq, dv, dtype=q.dtype)
        lh = torch.full((b, h, lq), float("-inf"), dtype=torch.float32)
        for c0, c1 in visible:
            oc, lc = attention(qh, k_host[:, :, c0:c1], v_host[:, :, c0:c1], backend="torch",
                               q_offset=off - (n_dev + c0), **kw)
            oh, lh = lse_merge(oh, lh, oc, lc)
        return oh, lh

    with torch.no_grad(), ThreadPoolExecutor(max_workers=1) as pool:
        cpu_job = pool.submit(host_part_on_cpu) if (mode == "host" and visible) else None
        if n_dev and n_dev > k_lo:
            od, ld = attention(q, k_dev, v_dev, backend=backend, q_offset=off, **kw)
            o, lse = lse_merge(o, lse, od, ld)
        if cpu_job is not None:
            w0 = time.perf_counter()
            oh, lh = cpu_job.result()
            st.wait_s += time.perf_counter() - w0
            o, lse = lse_merge(o, lse, oh.to(q.device), lh.to(q.device))
        elif visible:
            o, lse = _stream(q, k_host, v_host, visible, n_dev, off, o, lse, pool, backend, kw, st)
    st.total_s = time.perf_counter() - t_start
    return (o, lse) if return_lse else o


def _stream(q, k_host, v_host, visible, n_dev, off, o, lse, pool, backend, kw, st):
    """Stream host chunks to the device, prefetching chunk i + 1 while chunk i is computed."""
    dev = q.device
    cuda = dev.type == "cuda"
    side = torch.cuda.Stream(dev) if cuda else None

    def fetch(c0, c1):
        kc, vc = k_host[:, :, c0:c1], v_host[:, :, c0:c1]
        st.bytes_transferred += kc.numel() * kc.element_size() + vc.numel() * vc.element_size()
        if cuda:
            with torch.cuda.stream(side):
                kd, vd = kc.to(dev, non_blocking=True), vc.to(dev, non_blocking=True)
                ev = torch.cuda.Event()
                ev.record(side)
            return kd, vd, ev
        return kc.clone(), vc.clone(), None  # a real copy, as a transfer would make

    def submit(i):
        c0, c1 = visible[i]
        return fetch(c0, c1) if cuda else pool.submit(fetch, c0, c1)

    nxt = submit(0)
    for i, (c0, _) in enumerate(visible):
        w0 = time.perf_counter()
        kc, vc, ev = nxt if cuda else nxt.result()
        if ev is not None:
            torch.cuda.current_stream(dev).wait_event(ev)
        st.wait_s += time.perf_counter() - w0
        if i + 1 < len(visible):
            nxt = submit(i + 1)  # prefetch while this chunk computes
        oc, lc = attention(q, kc, vc, backend=backend, q_offset=off - (n_dev + c0), **kw)
        o, lse = lse_merge(o, lse, oc, lc)
    return o, lse
