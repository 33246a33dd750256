"""deepseek_moe row of issue 17: the ``small`` preset, batch 8 x 256, vs transformers' DeepseekV3ForCausalLM.

The measurement code lives in the package (:mod:`deepseek_moe.bench`, also ``python -m deepseek_moe bench``);
this module is the entry point ``benchmarks/run.py cpu --only deepseek_moe`` loads.
"""

from __future__ import annotations

from papercommon.bench import Record


def records(quick: bool) -> list[Record]:
    from deepseek_moe.bench import records as deepseek_records

    return deepseek_records(quick)
