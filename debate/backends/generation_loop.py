"""The own generation loop (`generation: own`) of the transformers backend.

A batch is left-padded and decoded by a small loop over the model's forward pass (greedy,
or temperature / top-k / top-p sampling with one seeded generator per row, so a row's text
does not depend on what else is in its batch). Finished rows are dropped from the batch as
they stop. The batch's key/value cache is allocated once for its longest prompt + new
tokens (kv_cache.PreallocatedLayer, for models whose layers are all plain full attention):
each step writes one position per row in place, and the reused rows are written straight
into it; one read-back of the chosen tokens per step. The repetition penalty (as
transformers' RepetitionPenaltyLogitsProcessor) applies to every token of the prompt,
cached or fed, and every token generated, never to padding.

`GenerationLoop` is a mixin of TransformersBackend (debate/backends/transformers_backend.py).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from debate.backends import capture
from debate.backends.base import Generation, SamplingSettings
from debate.backends.kv_cache import PreallocatedLayer
from debate.backends.prefix_cache import PrefixEntry, PromptItem


class GenerationLoop:
    """Prefill and decode one batch of prompt rows (a backend mixin)."""

    @torch.inference_mode()
    def _generate_batch(self, batch: list[PromptItem], settings: SamplingSettings) -> list[Generation]:
        started = time.perf_counter()
        entries = self._fill_prefixes(batch) if self.prefix_enabled else {}
        b = len(batch)
        reused, plen = self._reuse_plan(batch, entries, settings.max_new_tokens)
        rest = [it.ids[n:] for it, n in zip(batch, plen)]
        p_width = max(plen)
        s_width = max(len(r) for r in rest)
        # One cache for the whole batch, allocated once for prompt + new tokens (growing it
        # by concatenation would copy all of it every step); each row's reused key/values
        # are written straight into it, left-padded to the longest.
        cache = self._batch_cache(p_width + s_width + settings.max_new_tokens)
        if p_width:
            like = next(e for e in reused if e is not None).layers
            for layer, lay in enumerate(cache.layers):
                if isinstance(lay, PreallocatedLayer):
                    _, heads, _, dim = like[layer][0].shape
                    lay.allocate(b, heads, dim, self.dtype, self.device)
                    for row in range(b):
                        entry, start = reused[row], p_width - plen[row]
                        if start:  # padding: masked, but keep it finite
                            lay._k[row, :, :start].zero_()
                            lay._v[row, :, :start].zero_()
                        if entry is not None and plen[row]:
                            k, v = entry.layers[layer]
                            lay.write(row, start, k[:, :, : plen[row]], v[:, :, : plen[row]])
                    lay.set_length(p_width)
                    continue
                # sliding-window layers (reuse inside the window): the library's own layer
                keys, values = [], []
                for row in range(b):
                    pad, entry = p_width - plen[row], reused[row]
                    if entry is not None and plen[row]:
                        k, v = entry.layers[layer]
                        k, v = k[:, :, : plen[row]], v[:, :, : plen[row]]
                    else:
                        shape = like[layer][0].shape
                        k = v = torch.zeros((1, shape[1], 0, shape[3]), dtype=self.dtype,
                                            device=self.device)
                    if pad:
                        k = torch.nn.functional.pad(k, (0, 0, pad, 0))
                        v = torch.nn.functional.pad(v, (0, 0, pad, 0))
                    keys.append(k)
                    values.append(v)
                cache.update(torch.cat(keys), torch.cat(values), layer)
        ids = torch.full((b, s_width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, p_width + s_width), dtype=torch.long)
        positions = torch.zeros((b, s_width), dtype=torch.long)
        for row in range(b):
            n = len(rest[row])
            ids[row, s_width - n:] = torch.tensor(rest[row], dtype=torch.long)
            mask[row, p_width - plen[row]: p_width] = 1
            mask[row, p_width + s_width - n:] = 1
            positions[row, s_width - n:] = torch.arange(plen[row], plen[row] + n)
        next_pos = torch.tensor([it.length for it in batch], dtype=torch.long)
        self.stats["prefill_tokens"] += sum(len(r) for r in rest)
        self.stats["batches"] += 1
        dev = self.device
        ids, mask, positions, next_pos = ids.to(dev), mask.to(dev), positions.to(dev), next_pos.to(dev)
        hooks = capture.arm(self, settings.capture, b)
        logits = self._prefill(ids, mask, positions, cache, p_width)
        if entries and p_width:
            self._keep_prompts(batch, cache, plen, rest, p_width, s_width)
        processors = self._processors(settings)
        # The repetition penalty sees every token of each prompt (cached or fed, never
        # padding) and every token generated so far: `seen` marks them per row.
        seen = self._seen(batch, logits.shape[-1], settings)
        rows = list(range(b))  # batch row -> item row, shrinks as rows finish
        generated: list[list[int]] = [[] for _ in range(b)]
        finish = ["length"] * b
        stopped_by: list[list[int]] = [[] for _ in range(b)]
        generators = self._generators(batch, settings)
        # the attention mask for every step, allocated once: step t uses its first columns
        full_mask = torch.cat([mask, mask.new_ones((b, settings.max_new_tokens))], dim=1)
        width = mask.shape[1]
        stop = torch.tensor(sorted(self.stop_ids), dtype=torch.long, device=dev)
        for step in range(settings.max_new_tokens):
            if step < settings.min_new_tokens and len(stop):
                logits[:, stop] = float("-inf")
            tokens = self._choose(logits, seen, processors, [generators[r] for r in rows],
                                  settings)
            done_rows: list[int] = []
            for j, tok in enumerate(tokens.tolist()):  # one read-back per step
                r = rows[j]
                if tok in self.stop_ids:
                    finish[r] = "stop"
                    stopped_by[r].append(tok)
                    done_rows.append(j)
                else:
                    generated[r].append(tok)
            if step == settings.max_new_tokens - 1 or len(done_rows) == len(rows):
                break
            if done_rows:
                keep = [j for j in range(len(rows)) if j not in set(done_rows)]
                index = torch.tensor(keep, dtype=torch.long, device=dev)
                cache.batch_select_indices(index)
                full_mask, next_pos, tokens = full_mask[index], next_pos[index], tokens[index]
                if seen is not None:
                    seen = seen[index]
                rows = [rows[j] for j in keep]
            if seen is not None:
                seen[torch.arange(len(rows), device=dev), tokens] = True
            width += 1
            hooks.decode(rows)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=full_mask[:, :width],
                position_ids=next_pos[:, None],
                **{self._cache_kw: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
            self.stats["decode_steps"] += 1
        captured = hooks.finish()
        elapsed = time.perf_counter() - started
        results = []
        for row, it in enumerate(batch):
            text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
            results.append(Generation(
                text=text,
                prompt=it.prompt,
                prompt_tokens=it.length,
                completion_tokens=len(generated[row]) + (finish[row] == "stop"),
                finish_reason=finish[row],
                meta={"batch_size": b, "batch_seconds": round(elapsed, 4),
                      "prefix_reused_tokens": plen[row]},
                completion_ids=generated[row] + stopped_by[row],
                activations=captured[row] if captured else None,
            ))
        return results

    def _seen(self, batch: list[PromptItem], vocab: int, settings: SamplingSettings) -> Any:
        if settings.repetition_penalty == 1.0:
            return None
        seen = torch.zeros((len(batch), vocab), dtype=torch.bool, device=self.device)
        for row, it in enumerate(batch):
            seen[row, torch.tensor(it.ids, dtype=torch.long, device=self.device)] = True
        return seen

    def _keep_prompts(self, batch: list[PromptItem], cache: Any, plen: list[int],
                      rest: list[list[int]], p_width: int, s_width: int) -> None:
        """Keep each row's whole-prompt key/values (its padding cut out) for the
        debate's next turn, whose prompt starts with this one up to the new speeches."""
        for row, it in enumerate(batch):
            if it.prefix_key is None:
                continue
            n = len(rest[row])
            layers = []
            for lay in cache.layers:
                parts = []
                for t in (lay.keys, lay.values):
                    parts.append(torch.cat([t[row: row + 1, :, p_width - plen[row]: p_width],
                                            t[row: row + 1, :, p_width + s_width - n:
                                              p_width + s_width]], dim=2))
                layers.append((parts[0], parts[1]))
            nbytes = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
            self.prefix_cache.put_extension(
                it.prefix_key, PrefixEntry(list(it.ids), layers, nbytes))

    def _generators(self, batch: list[PromptItem], settings: SamplingSettings) -> list[Any]:
        if settings.greedy:
            return [None] * len(batch)
        gens = []
        for it in batch:
            g = torch.Generator(device=self.device)
            g.manual_seed(int(it.seed) % (2**63))
            gens.append(g)
        return gens

    @staticmethod
    def _processors(settings: SamplingSettings) -> list[Any]:
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        procs: list[Any] = []
        if not settings.greedy:
            procs.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_k > 0:
                procs.append(TopKLogitsWarper(settings.top_k))
            if settings.top_p < 1.0:
                procs.append(TopPLogitsWarper(settings.top_p))
        return procs

    @staticmethod
    def _choose(logits: torch.Tensor, seen: torch.Tensor | None, processors: list[Any],
                generators: list[Any], settings: SamplingSettings) -> torch.Tensor:
        if seen is not None:
            # as transformers' RepetitionPenaltyLogitsProcessor: scores of tokens seen
            # are divided by the penalty (multiplied where negative)
            p = settings.repetition_penalty
            logits = torch.where(seen, torch.where(logits < 0, logits * p, logits / p), logits)
        for proc in processors:
            logits = proc(None, logits)
        if settings.greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits, dim=-1)
        picks = [
            torch.multinomial(probs[j], 1, generator=generators[j]) for j in range(len(generators))
        ]
        return torch.cat(picks)
