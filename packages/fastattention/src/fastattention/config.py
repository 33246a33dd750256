"""Tiling configuration.

FastAttention (Lin et al., 2024, arXiv 2410.16663) tiles attention at two levels (§3.1, Fig. 1b):
a large first-level KV block for the matrix unit (the Ascend Cube unit; ``tl.dot`` on a GPU) so that
the matrix and vector units synchronise rarely, and small second-level sub-blocks inside it for the
vector unit (softmax rescaling), so that vector work on sub-block ``n`` overlaps matrix work on
``n + 1``. The paper states the idea, not portable sizes (its sizes are for the Ascend 910 buffers),
so the defaults below are ours, tuned per backend and documented as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


def _pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


@dataclass(frozen=True, kw_only=True)
class TilingConfig:
    """Tile sizes of the torch and Triton backends.

    Attributes:
        block_m: query rows per tile (torch backend). 128 x 256 keeps a score tile of 128 KB per head,
            so a few heads' tiles stay in L2 on a CPU while each matmul is still large enough for BLAS.
        block_n: first-level KV block (torch backend); the score GEMM runs once per block
            (FastAttention §3.1 "first level: larger block size").
        inner_n: second-level sub-block (torch backend) for the softmax update and the PV product;
            must divide ``block_n``. Equal to ``block_n`` means single-level tiling (plain FA2).
        triton_block_m: query rows per Triton program.
        triton_block_n_outer: first-level KV super-block of the Triton forward kernel.
        triton_block_n: second-level KV sub-tile of the Triton kernels (the online-softmax step);
            must divide ``triton_block_n_outer``.
        triton_num_warps / triton_num_stages: launch parameters of the Triton forward kernel.
        triton_bwd_block_m / triton_bwd_block_n: backward tiles; the dK/dV kernel holds
            ``triton_bwd_block_n`` keys and steps over ``triton_bwd_block_m`` queries, the dQ kernel the
            transpose (as in the Triton fused-attention tutorial).
        cpu_flash: on a CPU in fp32/fp64, the torch backend calls ATen's fused CPU flash kernel once per
            visible piece and merges the pieces by LSE (:mod:`fastattention.fast`); False runs the
            pure-torch two-level loop (``block_m``, ``block_n``, ``inner_n``) instead.
    """

    block_m: int = 128
    block_n: int = 256
    inner_n: int | None = None
    triton_block_m: int = 128
    triton_block_n_outer: int = 128
    triton_block_n: int = 64
    triton_num_warps: int = 8
    triton_num_stages: int = 2
    triton_bwd_block_m: int = 32
    triton_bwd_block_n: int = 128
    cpu_flash: bool = True

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "triton_block_m", "triton_block_n_outer", "triton_block_n",
                     "triton_num_warps", "triton_num_stages", "triton_bwd_block_m", "triton_bwd_block_n"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TilingConfig.{name}: expected a positive int, got {value!r}")
        if self.inner_n is not None:
            if not isinstance(self.inner_n, int) or self.inner_n < 1 or self.block_n % self.inner_n:
                raise ValueError(f"TilingConfig.inner_n: expected a positive divisor of block_n={self.block_n}, "
                                 f"got {self.inner_n!r}")
        for name in ("triton_block_m", "triton_block_n_outer", "triton_block_n", "triton_bwd_block_m",
                     "triton_bwd_block_n"):
            value = getattr(self, name)
            if not _pow2(value) or value < 16:
                raise ValueError(f"TilingConfig.{name}: expected a power of two >= 16 (tl.dot tile), got {value}")
        if self.triton_block_n_outer % self.triton_block_n:
            raise ValueError(f"TilingConfig.triton_block_n_outer: expected a multiple of triton_block_n="
                             f"{self.triton_block_n}, got {self.triton_block_n_outer}")

    @property
    def inner(self) -> int:
        """The second-level sub-block of the torch backend."""
        return self.inner_n or self.block_n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TilingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TilingConfig.from_dict: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)


DEFAULT_TILING = TilingConfig()
