"""vnm_sparse: V:N:M sparsity for Transformers (arXiv 2410.16135, "Beyond 2:4").

Masks (:func:`vnm_mask`, :func:`check_vnm`), V/M selection (:func:`mask_diversity`, :func:`select_vm`),
channel permutation (:func:`vnm_permute`, :func:`permute_model_`), compressed layers and kernels
(:class:`VNMLinear`, :func:`sparsify_`, :func:`vnm_matmul`), SR-STE fine-tuning and the three-staged LoRA.
"""

from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig
from vnm_sparse.functional import (
    VMSelection,
    VNMPacked,
    check_vnm,
    mask_diversity,
    pack_vnm,
    ria_score,
    select_vm,
    storage_bytes,
    unpack_vnm,
    vnm_mask,
    vnm_mask_reference,
    vnm_matmul_blocked,
    vnm_matmul_reference,
    vnm_matmul_torch,
)
from vnm_sparse.kernels import vnm_matmul
from vnm_sparse.lora import three_stage_lora
from vnm_sparse.modules import (
    VNMLinear,
    attach_sr_ste_,
    collect_act_norms,
    compute_masks,
    finalize_,
    model_storage,
    prunable_weights,
    prune_,
    refresh_masks_,
    sparsify_,
)
from vnm_sparse.permute import permute_model_, vnm_permute

__version__ = "0.1.0"

__all__ = [
    "ThreeStageLoRAConfig", "VMSelection", "VNMConfig", "VNMLinear", "VNMPacked", "attach_sr_ste_", "check_vnm",
    "collect_act_norms", "compute_masks", "finalize_", "mask_diversity", "model_storage", "pack_vnm",
    "permute_model_", "prunable_weights", "prune_", "refresh_masks_", "ria_score", "select_vm", "sparsify_",
    "storage_bytes", "three_stage_lora", "unpack_vnm", "vnm_mask", "vnm_mask_reference", "vnm_matmul", "vnm_matmul_blocked",
    "vnm_matmul_reference", "vnm_matmul_torch", "vnm_permute",
]
