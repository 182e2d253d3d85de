"""Tiny random-weight models of several architectures, built offline, saved like hub
checkpoints, each with a tokenizer of its family's kind and a chat template like its
family's (see tests/tiny_model.py for the Qwen2 one these follow):

- llama3: Llama, byte-level BPE with Llama 3's split pattern (newlines merge: "\\n\\n" is
  one token), `<|begin_of_text|>` written by the chat template; 384 positions (rotary).
- llama2: Llama, a sentencepiece-style BPE (Metaspace "▁" prefix space, byte fallback:
  transformers' LlamaTokenizer), the [INST] <<SYS>> template with `<s>`.
- gpt2: GPT-2, byte-level BPE, learned absolute positions (256), no chat template (the
  plain template; the tokenizer adds no BOS).
- gemma: Gemma, sentencepiece-style, Gemma's template, which raises on a system message.
- gemma2 / gemma3: Gemma 2 (sliding and full layers alternating) and Gemma 3 text (all
  sliding here), Gemma's template; sliding window WINDOW.
- mistral: Mistral (every layer sliding, WINDOW), Mistral-7B-Instruct-v0.1's template,
  which raises on anything but alternating user/assistant turns (so on a system message).
- phi3: Phi-3 (sliding window WINDOW, as Phi-3-mini-4k's 2047), Phi-3's template.
- qwen2: tests/tiny_model.py's model (ChatML).

Weights are random; the output layer is scaled up so that greedy decoding has wide
arg-max margins (padding noise cannot flip a token), as in tests/tiny_model.py.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from tiny_model import _WORDS, build_tiny_model

WINDOW = 160  # the sliding window of the sliding-window test models

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content | trim + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# name: (tokenizer kind, special tokens, bos, eos, pad, chat template)
FAMILIES = {
    "llama3": ("bytelevel-llama3", ["<|begin_of_text|>", "<|end_of_text|>",
                                     "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", "<|eot_id|>", None, LLAMA3_TEMPLATE),
    "llama2": ("metaspace", ["<unk>", "<s>", "</s>"], "<s>", "</s>", None, LLAMA2_TEMPLATE),
    "gpt2": ("bytelevel", ["<|endoftext|>"], None, "<|endoftext|>", None, None),
    "gemma": ("metaspace", ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                            "<end_of_turn>"], "<bos>", "<end_of_turn>", "<pad>", GEMMA_TEMPLATE),
    "mistral": ("metaspace", ["<unk>", "<s>", "</s>"], "<s>", "</s>", None, MISTRAL_TEMPLATE),
    "phi3": ("metaspace", ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>",
                           "<|end|>", "<|endoftext|>"], "<s>", "<|end|>", "<|endoftext|>",
             PHI3_TEMPLATE),
}
FAMILIES["gemma2"] = FAMILIES["gemma"]
FAMILIES["gemma3"] = FAMILIES["gemma"]
ARCHITECTURES = ["llama3", "llama2", "gpt2", "gemma", "gemma2", "gemma3", "mistral", "phi3",
                 "qwen2"]
SLIDING = ["gemma2", "gemma3", "mistral", "phi3"]


def _corpus(seed: int, lines: int = 2500) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.randint(5, 30)
        words = [rng.choice(_WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[rng.randrange(n)] += rng.choice([".\n\n", "\n\n", ":\n", ".\n"])
        out.append(" ".join(words))
    out.append("Answer: A\nAnswer: B\n<quote>the keeper</quote> Debater A Debater B\n\n### System:")
    return out


def _alphabet() -> list[str]:
    return sorted(set(string.printable) | {"\u2581"})


def build_tokenizer(kind: str, specials: list[str], bos: str | None, eos: str,
                    pad: str | None, template: str | None, path: Path, vocab: int = 700):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer, PreTrainedTokenizerFast

    if kind.startswith("bytelevel"):
        tok = Tokenizer(models.BPE())
        if kind == "bytelevel-llama3":
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ])
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(_corpus(7), trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos,
                                       pad_token=pad, unk_token=None)
    else:
        # sentencepiece-style: a "▁" for each space and one before the text, no splitting
        # on spaces, bytes as a fallback (how Llama 2, Gemma, Mistral, Phi-3 tokenise)
        tok = Tokenizer(models.BPE(unk_token="<unk>" if "<unk>" in specials else None))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                     prepend_scheme="first", split=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                      initial_alphabet=_alphabet(), show_progress=False,
                                      max_token_length=12)
        tok.train_from_iterator(_corpus(11), trainer)
        model = json.loads(tok.to_str())["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                  for m in model["merges"]]
        fast = LlamaTokenizer(vocab=model["vocab"], merges=merges, bos_token=bos,
                              eos_token=eos, unk_token="<unk>" if "<unk>" in specials else None,
                              pad_token=pad, add_bos_token=bos is not None,
                              additional_special_tokens=[s for s in specials
                                                         if s not in (bos, eos, pad, "<unk>")])
    if template is not None:
        fast.chat_template = template
    fast.save_pretrained(path)
    return fast


def _config(name: str, tok, max_positions: int):
    import transformers as tf

    common = {
        "vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 64, "initializer_range": 0.2,
        "tie_word_embeddings": False, "max_position_embeddings": max_positions,
        "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }
    if name in ("llama3", "llama2"):
        return tf.LlamaConfig(**common)
    if name == "gemma":
        return tf.GemmaConfig(head_dim=16, **common)
    if name == "gemma2":
        return tf.Gemma2Config(head_dim=16, sliding_window=WINDOW, **common)
    if name == "gemma3":
        return tf.Gemma3TextConfig(head_dim=16, sliding_window=WINDOW, **common)
    if name == "mistral":
        return tf.MistralConfig(head_dim=16, sliding_window=WINDOW, **common)
    if name == "phi3":
        return tf.Phi3Config(sliding_window=WINDOW, **common)
    if name == "gpt2":
        return tf.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2,
                             n_positions=max_positions, initializer_range=0.2,
                             tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
                             bos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    raise ValueError(name)


def build_arch_model(name: str, path: str | Path, max_positions: int | None = None,
                     lm_head_scale: float = 5.0, seed: int = 0) -> Path:
    """Write a tokenizer and a random-weight model of architecture `name` to `path`."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if name == "qwen2":
        return build_tiny_model(path)
    path.mkdir(parents=True, exist_ok=True)
    kind, specials, bos, eos, pad, template = FAMILIES[name]
    tok = build_tokenizer(kind, specials, bos, eos, pad, template, path)
    if max_positions is None:
        max_positions = {"gpt2": 256, "llama3": 384}.get(name, 4096)
    config = _config(name, tok, max_positions)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(lm_head_scale)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(path)
    return path


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_arch_model(sys.argv[1], sys.argv[2]))
