"""The demo's `pixels` section, image debate on the digits: about a minute on a laptop CPU.

Trains (or loads the cached) k=4 judge on the digits, plays exact-minimax debates on the
first test images in both orders, prints the Table 2 layout and stores the debates.
"""

from __future__ import annotations

from debate.pixels.runner import TableRequest, run_tables

DEMO_IMAGES = 30


def run(store, console) -> None:
    import torch

    torch.set_num_threads(1)
    console.rule("Image debate (Irving et al. 2018) on the digits data set")
    summaries = run_tables(
        TableRequest(ks=[4], images=DEMO_IMAGES, player="minimax", store=True), console,
        store=store,
    )
    name = summaries[0].get("experiment")
    console.print(
        f"Next: `debate pixels table --k 4` plays all 450 test images; `debate serve` shows "
        f"experiment {name!r} for people to judge."
    )
