"""Scoring: the probability a model gives each answer label as its next token.

Each label's probability is the sum over the tokens that start it (with and without a
leading space), renormalised over the labels. On CPU prompts are fed one at a time without
padding; elsewhere in left-padded batches.

`Scoring` is a mixin of TransformersBackend (debate/backends/transformers_backend.py).
"""

from __future__ import annotations

import torch

from debate.backends.base import BackendError, Chat
from debate.backends.prefix_cache import PromptItem


class Scoring:
    """Label probabilities for a batch of chats (a backend mixin)."""

    def label_token_ids(self, labels: list[str]) -> list[list[int]]:
        """For each label, the ids of the tokens that start it (with and without a space).
        A token that is only a space is skipped: a sentencepiece-style tokenizer (Llama 2,
        Mistral, Gemma) writes " A" as "▁" + "A", and "▁" starts every label."""
        out: list[list[int]] = []
        owner: dict[int, str] = {}
        for label in labels:
            ids: set[int] = set()
            for variant in (label, " " + label):
                toks = self.tokenizer(variant, add_special_tokens=False)["input_ids"]
                while len(toks) > 1 and not self.tokenizer.decode([toks[0]]).strip():
                    toks = toks[1:]
                if toks:
                    ids.add(int(toks[0]))
            for i in ids:
                if i in owner and owner[i] != label:
                    raise BackendError(
                        f"labels {owner[i]!r} and {label!r} start with the same token; "
                        "use labels that differ in their first token"
                    )
                owner[i] = label
            out.append(sorted(ids))
        return out

    def score(self, chats: list[Chat], labels: list[str]) -> list[list[float] | None]:
        label_ids = self.label_token_ids(labels)
        items = [self._item(i, c) for i, c in enumerate(chats)]
        self._check_lengths(items, 0)
        results: list[list[float] | None] = [None for _ in items]
        for batch in self._batches(items, 0):
            for it, probs in zip(batch, self._score_batch(batch, label_ids)):
                results[it.index] = probs
        return results

    @torch.inference_mode()
    def _score_batch(self, batch: list[PromptItem], label_ids: list[list[int]]) -> list[list[float]]:
        if self._one_row_at_a_time():
            logits = torch.cat([self._prefill_alone(it.ids)[0] for it in batch])
        else:
            width = max(len(it.ids) for it in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, it in enumerate(batch):
                n = len(it.ids)
                ids[row, width - n:] = torch.tensor(it.ids, dtype=torch.long)
                mask[row, width - n:] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self._prefill(ids.to(self.device), mask.to(self.device),
                                   positions.to(self.device), self._new_cache(), 0)
        logprobs = torch.log_softmax(logits, dim=-1)
        per_label = torch.stack(
            [torch.logsumexp(logprobs[:, ids_], dim=-1) for ids_ in label_ids], dim=-1
        )
        return torch.softmax(per_label, dim=-1).cpu().tolist()
