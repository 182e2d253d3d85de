"""A tiny causal language model and tokenizer built offline, saved like a hub checkpoint.

The tokenizer is a byte-level BPE trained with the `tokenizers` library on a small
generated corpus, with a ChatML chat template; the model is a Qwen2 architecture with
random weights. The output layer is scaled up so that the arg-max margin between the top
two tokens is wide: greedy decoding then gives the same text whether a prompt runs alone
or padded in a batch (float noise from padding cannot flip a token).

Both are written with `save_pretrained`, so loading them takes exactly the path a hub id
takes (`AutoTokenizer` / `AutoModelForCausalLM.from_pretrained(directory)`).

`build_tiny_model(path)` is used by the tests; `size="25m"` (~25M parameters, cost in the
weights) and `size="100m"` (~100M) are the larger shapes of benchmarks/generation.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

_WORDS = ["the", "keeper", "climbed", "tower", "every", "evening", "for", "thirty", "years", "after", "new", "harbour", "opened", "south", "no", "ship", "came", "through", "channel", "any", "more", "one", "autumn", "night", "he", "simply", "left", "lamp", "dark", "mara", "spent", "spring", "digging", "along", "north", "wall", "by", "may", "she", "had", "planted", "twelve", "cherry", "trees", "there", "and", "pears", "went", "gate", "where", "sun", "was", "warmer", "answer", "question", "debater", "judge", "quote", "text", "source", "because", "says", "shows", "argues", "therefore", "claim", "evidence", "story", "character", "reason", "wrong", "right", "true", "false", "first", "second", "round", "opponent", "passage", "line", "chapter", "letter", "wrote", "said", "told", "asked", "house", "river", "city", "road", "window", "door", "morning", "water", "light", "stone", "garden", "winter", "summer", "people", "ship", "captain", "crew", "planet", "star", "engine", "signal", "message", "radio", "station", "doctor", "machine", "year", "a", "an", "of", "to", "in", "is", "it", "that", "on", "with", "as", "at", "be", "this", "from", "or", "by", "not", "but", "what", "all", "were", "when", "we", "A", "B", "Answer", ":", ".", ",", "?", "!", "'", '"', "(", ")", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]

# tiny: 2 heads of 16 dims sharing one key/value head (grouped-query attention, as in
# Qwen2.5 / Llama 3); 4 heads of 8 dims made attention scores (whose cost does not shrink
# with the head size) dominate every other cost far beyond any real model's profile.
SIZES = {
    # name: (hidden, layers, heads, kv heads, intermediate, vocab)
    "tiny": (32, 2, 2, 1, 64, 600),
    # ~25M: cost in the weights (the shape of the outside measurement in issue 17)
    "25m": (512, 8, 8, 2, 1280, 4000),
    "100m": (1024, 8, 16, 4, 3072, 4000),
}


def _corpus(seed: int, lines: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.randint(5, 30)
        out.append(" ".join(rng.choice(_WORDS) for _ in range(n)))
    out.append("Answer: A\nAnswer: B\n<quote>the keeper</quote> Debater A Debater B")
    return out


def build_tokenizer(path: Path, vocab_size: int, seed: int = 0):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed, 3000), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)
    return fast


def build_tiny_model(
    path: str | Path, size: str = "tiny", seed: int = 0, chat_template: bool = True,
    lm_head_scale: float = 5.0, initializer_range: float | None = None,
) -> Path:
    """Write a tokenizer and a random-weight model to `path`; returns the path."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hidden, layers, heads, kv_heads, inter, vocab = SIZES[size]
    if initializer_range is None:
        # tiny: large weights make the output depend on the whole prompt; 100m: the usual
        initializer_range = 0.2 if size == "tiny" else 0.02
    tok = build_tokenizer(path, vocab, seed)
    if not chat_template:
        cfg_file = path / "tokenizer_config.json"
        data = json.loads(cfg_file.read_text())
        data.pop("chat_template", None)
        cfg_file.write_text(json.dumps(data))
        (path / "chat_template.jinja").unlink(missing_ok=True)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=inter,
        max_position_embeddings=8192,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        # Wide arg-max margins: logits spread over tens of units, float noise is ~1e-5.
        model.lm_head.weight.mul_(lm_head_scale)
    model.save_pretrained(path)
    return path


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_tiny_model(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tiny"))
