"""Text conditioning: each prompt is encoded once, then the text encoders are let go.

The sampler conditions both networks on one fixed prompt per model, so the
embeddings are computed when the models load and the (large) text encoders are
freed right after: UMT5-XXL alone is ~11 GB in bf16.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.inference_mode()
def encode_umt5(tokenizer, encoder, prompt: str, max_length: int) -> Tensor:
    """(1, max_length, D) UMT5 embeddings, zero past the prompt's tokens (as Wan's pipeline)."""
    tokens = tokenizer([prompt], padding="max_length", max_length=max_length, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    device = next(encoder.parameters()).device
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    hidden = encoder(ids, mask).last_hidden_state.float()
    length = int(mask.gt(0).sum())
    hidden[:, length:] = 0
    return hidden.cpu()


@torch.inference_mode()
def encode_sdxl(tokenizers, encoders, prompt: str) -> tuple[Tensor, Tensor]:
    """SDXL conditioning: penultimate hidden states of both CLIPs side by side, and the pooled projection."""
    states, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, encoders):
        tokens = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length,
                           truncation=True, return_tensors="pt")
        device = next(encoder.parameters()).device
        out = encoder(tokens.input_ids.to(device), output_hidden_states=True)
        states.append(out.hidden_states[-2].float())
        pooled = out[0].float()  # the last encoder's text_embeds
    return torch.cat(states, dim=-1).cpu(), pooled.cpu()


def char_tokenizer(model_max_length: int):
    """A real transformers fast tokenizer with one token per printable character, for the tiny models.

    The tiny text encoders then see a prompt through the same tokenizer calls as
    the real ones, without any download. Vocabulary: 4 special tokens + 95 characters.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<s>": 2, "<unk>": 3}
    vocab.update({chr(c): 4 + i for i, c in enumerate(range(32, 127))})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", bos_token="<s>",
                                   unk_token="<unk>", model_max_length=model_max_length)
