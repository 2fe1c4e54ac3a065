"""Tiny random-weight Llama models and a byte-level tokenizer, built in-process (no download).

Shared by the unit tests and by the end-to-end DVC test, which saves one to a folder and
points ``model.source`` at it.
"""

from __future__ import annotations

from pathlib import Path

import torch

TRAINING_TEXT = [
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "The pass key is 12345. Remember it. 12345 is the pass key. What is the pass key?",
    "The special magic number for apple is 67890. Question: Answer:",
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "패스키는 12345입니다. 기억하세요. 패스키는 무엇입니까? 풀은 초록색이다. 하늘은 파랗다.",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|im_start|>",
                                   pad_token="<|endoftext|>", model_max_length=4096)


def starts_with_bos(tokenizer):
    """The same tokenizer, adding BOS at the start of every text by default (as Llama-3's does)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = tokenizer.backend_tokenizer
    bos = tokenizer.bos_token
    backend.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, tokenizer.bos_token_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token, bos_token=bos,
                                   pad_token=tokenizer.pad_token, model_max_length=tokenizer.model_max_length)


def tiny_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def save_tiny_model(folder: str | Path) -> Path:
    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def save_llama3_shaped_model(folder: str | Path) -> Path:
    """A tiny model shaped like Llama-3: untied lm_head, grouped-query attention (4 heads, 1 KV head),
    rope theta 500,000, a BOS token and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    tokenizer = starts_with_bos(tokenizer)
    # Llama-3's layout: BOS written by the template, a header per turn, an end-of-turn token, the assistant's header
    tokenizer.chat_template = ("{{ bos_token }}{% for message in messages %}[{{ message['role'] }}]\n\n"
                               "{{ message['content'] }}<|endoftext|>{% endfor %}"
                               "{% if add_generation_prompt %}[assistant]\n\n{% endif %}")
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
