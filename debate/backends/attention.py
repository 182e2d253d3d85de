"""Scaled dot-product attention without copying grouped key/value heads (CPU).

Models with grouped-query attention (Llama 3, Qwen2, Mistral, Gemma...) keep fewer
key/value heads than query heads. transformers' `sdpa` attention passes torch's
`enable_gqa` only on CUDA without a mask; otherwise, whenever a step feeds more than one
token under a mask (prefilling a padded batch, or the new part of a prompt after reused
key/values), it first copies every cached key and value once per query group
(`repeat_kv`). On CPU that copy is the largest single cost of prefilling a batch of long
prompts: a 25M-parameter model with 4 query heads per key/value head spent 27% of a
debate's generation time in it. torch's CPU kernel takes the mask and `enable_gqa`
together and gives bit-identical output, so this implementation does exactly that for
those calls and hands every other call (one-token decoding steps, masks built from
position biases, soft-capping) to the library's own function unchanged.

`use_gqa_attention(model)` switches a loaded model whose attention is `sdpa` on CPU to it;
the mask functions are the library's `sdpa` ones. transformers' continuous batching accepts
only the library's own names, so `generation: continuous` puts the model back on `sdpa`
(debate/backends/continuous.py).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GQA_SDPA = "sdpa_gqa"


def sdpa_gqa_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, attention_mask: torch.Tensor | None,
                     dropout: float = 0.0, scaling: float | None = None,
                     is_causal: bool | None = None, **kwargs: Any,
                     ) -> tuple[torch.Tensor, None]:
    groups = getattr(module, "num_key_value_groups", 1)
    if (groups > 1 and query.shape[2] > 1 and attention_mask is not None
            and kwargs.get("position_bias") is None and kwargs.get("softcap") is None
            and not kwargs.get("output_attentions", False)):
        # With a mask the library's call is not causal (the mask says it all): the same
        # call, with the key/value heads shared by their query groups instead of copied.
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
            is_causal=False, enable_gqa=True,
        )
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                  scaling=scaling, is_causal=is_causal, **kwargs)


AttentionInterface.register(GQA_SDPA, sdpa_gqa_forward)
AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)


def use_gqa_attention(model: Any, device: torch.device) -> bool:
    """Switch `model` to `sdpa_gqa` when it runs `sdpa` on CPU; True if it did."""
    if device.type != "cpu" or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    if not model._can_set_attn_implementation():
        return False
    model.set_attn_implementation(GQA_SDPA)
    return model.config._attn_implementation == GQA_SDPA
