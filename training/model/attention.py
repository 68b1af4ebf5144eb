"""Causal attention of a query chunk against its whole prefix, at the cost of the causal kernel.

Queries at positions [s, e) see every key of [0, s) and keys [s, e) causally. PyTorch's fused kernels skip
masked blocks only for the square causal case, so a chunk passed with a bottom-right causal mask does about
(e - s) x e work in a slower masked kernel (measured 1.5x the causal kernel's time per chunked sequence on
CPU). On CPU we split the keys instead — the prefix unmasked, the diagonal block causal — run the fused
flash kernel on each, and merge the two softmaxes by their log-sum-exps (online softmax). The backward of
each part uses the merged output and log-sum-exp, which is exactly the split-KV backward of flash attention.
The kernels are PyTorch's own (`aten::_scaled_dot_product_flash_attention_for_cpu` and its backward, which
the public SDPA dispatches to on CPU); they are private, so anything else falls back to the masked public call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_FLASH_CPU_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


class _SplitPrefixAttention(torch.autograd.Function):
    """softmax over [prefix | causal diagonal] from two flash calls, merged by log-sum-exp."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        s = k.shape[2] - q.shape[2]
        o1, l1 = _FLASH_CPU(q, k[:, :, :s], v[:, :, :s], 0.0, False)
        o2, l2 = _FLASH_CPU(q, k[:, :, s:], v[:, :, s:], 0.0, True)
        lse = torch.logaddexp(l1, l2)
        out = o1 * torch.exp(l1 - lse).unsqueeze(-1) + o2 * torch.exp(l2 - lse).unsqueeze(-1)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v, out, lse = ctx.saved_tensors
        s = k.shape[2] - q.shape[2]
        grad_out = grad_out.contiguous()
        dq1, dk1, dv1 = _FLASH_CPU_BACKWARD(grad_out, q, k[:, :, :s], v[:, :, :s], out, lse, 0.0, False)
        dq2, dk2, dv2 = _FLASH_CPU_BACKWARD(grad_out, q, k[:, :, s:], v[:, :, s:], out, lse, 0.0, True)
        return dq1 + dq2, torch.cat([dk1, dk2], dim=2), torch.cat([dv1, dv2], dim=2)


def split_kernel_available(q: torch.Tensor) -> bool:
    return (_FLASH_CPU is not None and _FLASH_CPU_BACKWARD is not None and q.device.type == "cpu"
            and q.dtype in (torch.float32, torch.float64, torch.bfloat16))


def prefix_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, H, c, hd) queries of the last c positions against (B, H, e, hd) keys/values, causal, e >= c."""
    c, e = q.shape[2], k.shape[2]
    if c == e:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if split_kernel_available(q):
        return _SplitPrefixAttention.apply(q.contiguous(), k.contiguous(), v.contiguous())
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(c, e))
