"""``MiMoForCausalLM``: the transformers Qwen2 decoder plus MiMo's chained Multi-Token-Prediction (MTP) layers.

Parameter names match the released MiMo checkpoints exactly::

    model.embed_tokens, model.layers.{j}.*, model.norm, lm_head          (Qwen2)
    model.mtp_layers.{i}.{token_layernorm, hidden_layernorm, input_proj, input_layernorm,
                          self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj,
                          final_layernorm}

MTP layer i at position t (docs/design.md §1.1)::

    z = input_proj(cat([hidden_layernorm(h_t), token_layernorm(embed(x_{t+1+i}))]))   # hidden first, unlike DeepSeek-V3
    g = final_layernorm(DecoderBlock(z))        -> logits = lm_head(g) predict x_{t+2+i}

where h is the main model's hidden state for i = 0 (before or after its final norm: ``config.mtp_hidden_source``)
and the previous MTP layer's output g for i > 0.  Every MTP layer shares ``embed_tokens`` and ``lm_head``.  The same
:meth:`MiMoMTPLayer.forward` serves the training loss here and drafting in :mod:`mimo.infer.speculative`.

The main path is numerically the one of ``Qwen2ForCausalLM`` (tested).  We run the decoder loop ourselves (built
from transformers' Qwen2 modules) only to keep the pre-norm hidden state and to accept the inference engine's
own KV cache, which needs just ``update(key, value, layer_idx)``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2DecoderLayer,
    Qwen2Model,
    Qwen2PreTrainedModel,
    Qwen2RMSNorm,
)

from mimo.model.config import MiMoConfig

IGNORE_INDEX = -100


@functools.cache
def _cache_kw() -> str:
    """The name under which a Qwen2 decoder layer takes its KV cache: ``past_key_values`` up to transformers 5.19,
    ``cache`` from 5.20 on (which still accepts the old name, with a deprecation warning).  Passing the wrong one
    is silent -- the layer puts it in ``**kwargs`` and attends without a cache -- hence the explicit check."""
    return "cache" if "cache" in inspect.signature(Qwen2DecoderLayer.forward).parameters else "past_key_values"


class MiMoMTPLayer(Qwen2DecoderLayer):
    """One MTP layer: a Qwen2 decoder block (its parameters sit directly under ``mtp_layers.{i}``, as in the released
    weights) with token/hidden input norms, the ``2h -> h`` input projection and a final norm.

    Its attention runs over its own positions with its own KV cache (``layer_idx`` 0 of a separate cache object).
    """

    def __init__(self, config: MiMoConfig):
        super().__init__(config, layer_idx=0)
        h = config.hidden_size
        self.token_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)
        self.hidden_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)
        self.input_proj = nn.Linear(2 * h, h, bias=False)
        self.final_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)

    def forward(  # type: ignore[override]
        self,
        hidden: torch.Tensor,  # (B, T, H) previous hidden state at positions t
        token_embeds: torch.Tensor,  # (B, T, H) embeddings of x_{t+1+i}
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache=None,
    ) -> torch.Tensor:  # (B, T, H), already final-normed
        z = self.input_proj(torch.cat([self.hidden_layernorm(hidden), self.token_layernorm(token_embeds)], dim=-1))
        z = super().forward(z, attention_mask=attention_mask, position_embeddings=position_embeddings,
                            **{_cache_kw(): cache})
        return self.final_layernorm(z)


@dataclass
class MiMoModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None  # (B, T, H) after the final norm
    pre_norm_hidden_state: torch.Tensor | None = None  # (B, T, H) before it
    cache: Cache | None = None
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class MiMoCausalLMOutput(ModelOutput):
    loss: torch.Tensor | None = None  # main + w * mean(mtp_losses)
    logits: torch.Tensor | None = None  # (B, T, V)
    cache: Cache | None = None
    main_loss: torch.Tensor | None = None
    mtp_losses: list[torch.Tensor] | None = None
    mtp_accuracies: list[torch.Tensor] | None = None  # top-1 accuracy of each MTP layer on its targets
    hidden_states: torch.Tensor | None = None  # (B, T, H) the state MTP layer 0 reads (see mtp_hidden_source)

    @property
    def past_key_values(self) -> Cache | None:
        """The cache under the name transformers' output classes use (its prompt-lookup decoding reads it)."""
        return self.cache


class MiMoModel(Qwen2Model):
    config_class = MiMoConfig

    def __init__(self, config: MiMoConfig):
        super().__init__(config)
        self.mtp_layers = nn.ModuleList([MiMoMTPLayer(config) for _ in range(config.num_nextn_predict_layers)])
        self.post_init()

    def _mask(self, attention_mask, inputs_embeds, cache, position_ids):
        # A 4D mask (B, 1, Tq, Tk) comes ready from mimo.infer; otherwise transformers builds it (None when plain
        # causal, which lets SDPA use its causal kernel).
        if attention_mask is not None and attention_mask.dim() == 4:
            return attention_mask
        # the cache argument is positional: its name changed in transformers 5.20 (past_key_values -> cache)
        return create_causal_mask(self.config, inputs_embeds, attention_mask, cache, position_ids=position_ids)

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> MiMoModelOutput:
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if position_ids is None:
            past = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past).unsqueeze(0)
        mask = self._mask(attention_mask, inputs_embeds, cache, position_ids)
        h = inputs_embeds
        pos_emb = self.rotary_emb(h, position_ids)
        cache_kw = _cache_kw()
        for layer in self.layers[: self.config.num_hidden_layers]:
            h = layer(h, attention_mask=mask, position_ids=position_ids, use_cache=use_cache,
                      position_embeddings=pos_emb, **{cache_kw: cache})
        return MiMoModelOutput(last_hidden_state=self.norm(h), pre_norm_hidden_state=h, cache=cache,
                               position_embeddings=pos_emb)

    def mtp_source(self, out: MiMoModelOutput) -> torch.Tensor:
        """The main hidden state MTP layer 0 reads (config.mtp_hidden_source)."""
        if self.config.mtp_hidden_source == "pre_norm":
            return out.pre_norm_hidden_state
        return out.last_hidden_state

    def set_rope_theta(self, theta: float) -> None:
        """Change the RoPE base in place (pretraining stage 3 raises it), recomputing the inverse frequencies."""
        params = dict(self.config.rope_parameters or {"rope_type": "default"})
        params["rope_theta"] = float(theta)
        self.config.rope_parameters = params
        inv_freq, _ = self.rotary_emb.compute_default_rope_parameters(self.config)
        device = self.rotary_emb.inv_freq.device
        self.rotary_emb.inv_freq = inv_freq.to(device)
        self.rotary_emb.original_inv_freq = inv_freq.clone().to(device)


def _token_ce(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over targets != IGNORE_INDEX and top-1 accuracy.  logits (B, T, V), targets (B, T)."""
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)
    with torch.no_grad():
        valid = targets != IGNORE_INDEX
        acc = ((logits.argmax(-1) == targets) & valid).sum() / valid.sum().clamp(min=1)
    return loss, acc


class MiMoForCausalLM(Qwen2PreTrainedModel, GenerationMixin):
    config_class = MiMoConfig
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _no_split_modules = ["Qwen2DecoderLayer", "MiMoMTPLayer"]

    def __init__(self, config: MiMoConfig):
        super().__init__(config)
        self.model = MiMoModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def num_mtp_layers(self) -> int:
        return len(self.model.mtp_layers)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained`` plus the remote-code config vLLM/SGLang need (see hf_compat)."""
        from mimo.model.hf_compat import add_remote_code

        out = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            add_remote_code(save_directory)
        return out

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        mtp_loss_weight: float = 0.0,
        mtp_detached: bool = False,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> MiMoCausalLMOutput:
        """Main-path logits (identical to Qwen2ForCausalLM); with ``labels`` (aligned with ``input_ids``, shifted
        inside, -100 ignored) the loss ``main + mtp_loss_weight * mean_i(MTP_i loss)`` where MTP layer i predicts
        ``labels[t + 2 + i]``.  MTP layers run only when ``mtp_loss_weight > 0``.  ``mtp_detached``: the MTP losses
        reach the MTP layers only (see :meth:`mtp_forward_losses`), for an MTP loss beside another objective."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache if cache is not None else past_key_values, inputs_embeds=inputs_embeds,
                         use_cache=use_cache)
        h = out.last_hidden_state
        logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)  # (B, T, V)
        if labels is None:
            return MiMoCausalLMOutput(logits=logits, cache=out.cache, hidden_states=self.model.mtp_source(out))
        main_loss, _ = _token_ce(logits[:, :-1], labels[:, 1:])
        loss = main_loss
        mtp_losses, mtp_accs = [], []
        if mtp_loss_weight > 0 and self.num_mtp_layers > 0:
            if input_ids is None:
                raise ValueError("the MTP loss needs input_ids")
            mtp_losses, mtp_accs = self.mtp_forward_losses(input_ids, labels, self.model.mtp_source(out),
                                                           out.position_embeddings, attention_mask,
                                                           position_ids=position_ids, detached=mtp_detached)
            loss = main_loss + mtp_loss_weight * torch.stack(mtp_losses).mean()
        return MiMoCausalLMOutput(loss=loss, logits=logits, cache=out.cache, main_loss=main_loss,
                                  mtp_losses=mtp_losses, mtp_accuracies=mtp_accs,
                                  hidden_states=self.model.mtp_source(out))

    def mtp_forward_losses(self, input_ids, labels, hidden, position_embeddings, attention_mask=None,
                           layers: range | None = None, position_ids=None, detached: bool = False):
        """Teacher-forced MTP losses.  Layer i sees positions t < T-1-i: hidden from layer i-1 (main for i=0) and
        embed(input_ids[t+1+i]) -- zero where the RoPE position (``position_ids``, default t) is 0 when
        ``config.mtp_zero_first_position``; its target is labels[t+2+i] (the last position has none).

        ``detached``: the gradients reach the MTP layers and nothing else -- the main hidden state, the shared token
        embedding and the shared ``lm_head`` enter as constants -- so the main model's gradients are exactly those
        of the other loss terms (RL's online MTP loss, :mod:`mimo.rl.actor`)."""
        T = input_ids.shape[1]
        cos, sin = position_embeddings
        losses, accs = [], []
        layers = layers if layers is not None else range(self.num_mtp_layers)
        h = hidden.detach() if detached else hidden
        embeds = self.model.embed_tokens(input_ids)  # (B, T, H)
        if detached:
            embeds = embeds.detach()
        head_w = self.lm_head.weight.detach() if detached else self.lm_head.weight
        shifted = [embeds[:, 1 + i: T] for i in range(self.num_mtp_layers)]  # layer i's token input at t
        if getattr(self.config, "mtp_zero_first_position", False):
            pos = torch.arange(T, device=input_ids.device)[None] if position_ids is None else position_ids
            first = (pos == 0)[..., None]  # (B or 1, T, 1)
            shifted = [e.masked_fill(first[:, : e.shape[1]], 0.0) for e in shifted]
        for i in range(max(layers) + 1 if len(layers) else 0):
            n = T - 1 - i  # positions with an input token
            if n < 2:
                break
            mask = None
            if attention_mask is not None and attention_mask.dim() == 4:  # e.g. packed SFT's block-diagonal mask
                mask = attention_mask[:, :, :n, :n]
            elif attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.all()):
                keep = attention_mask[:, :n].bool()
                causal = torch.ones(n, n, dtype=torch.bool, device=keep.device).tril()
                mask = causal[None, None] & keep[:, None, None, :]
            g = self.model.mtp_layers[i](h[:, :n], shifted[i][:, :n], (cos[:, :n], sin[:, :n]), mask)
            if i in layers:
                logits = torch.nn.functional.linear(g[:, : n - 1], head_w, self.lm_head.bias)  # (B, n-1, V)
                loss, acc = _token_ce(logits, labels[:, 2 + i: 2 + i + n - 1])
                losses.append(loss)
                accs.append(acc)
            h = g
        return losses, accs
