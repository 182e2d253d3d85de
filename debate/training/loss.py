"""The DPO loss of a policy against a reference on preference pairs, computed here (not by
TRL), so that training can be checked from outside the trainer.

    loss = mean over pairs of -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

where log pi(c) is the summed log-probability of the chosen completion (with the end-of-
turn token) given the exact prompt. Tokenised as TRL does: prompt + completion as one
text, the completion starting where its tokens part from the prompt's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _completion_ids(tok, prompt: str, completion: str) -> tuple[list[int], int]:
    eos = tok.eos_token or ""
    text = completion if completion.endswith(eos) else completion + eos
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(prompt + text, add_special_tokens=False)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(full)) and prompt_ids[start] == full[start]:
        start += 1
    return full, start


@torch.no_grad()
def completion_logp(model, tok, prompt: str, completion: str) -> float:
    """Summed log-probability of `completion` (+ end-of-turn) after `prompt`."""
    ids, start = _completion_ids(tok, prompt, completion)
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    logits = model(input_ids=x).logits[0, :-1].float()
    logp = F.log_softmax(logits, dim=-1)
    targets = x[0, 1:]
    picked = logp.gather(1, targets[:, None])[:, 0]
    return float(picked[max(start - 1, 0):].sum())


@dataclass
class PairLoss:
    loss: float             # mean DPO loss
    accuracy: float         # share of pairs whose implicit reward prefers chosen
    margin: float           # mean implicit reward margin (beta-scaled)


def dpo_loss(policy, reference, tok, rows: list[dict[str, str]], beta: float) -> PairLoss:
    policy.eval()
    reference.eval()
    losses, wins, margins = [], 0, []
    for row in rows:
        pc = completion_logp(policy, tok, row["prompt"], row["chosen"])
        pr = completion_logp(policy, tok, row["prompt"], row["rejected"])
        rc = completion_logp(reference, tok, row["prompt"], row["chosen"])
        rr = completion_logp(reference, tok, row["prompt"], row["rejected"])
        z = beta * ((pc - rc) - (pr - rr))
        losses.append(-F.logsigmoid(torch.tensor(z)).item())
        wins += z > 0
        margins.append(z)
    n = max(len(rows), 1)
    return PairLoss(sum(losses) / n if losses else math.nan, wins / n, sum(margins) / n)
