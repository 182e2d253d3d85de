"""`debate campaigns create|list|close|open`: human judging campaigns."""

from __future__ import annotations

import click

from debate.cli.options import db_option
from debate.store.db import open_store
from debate.vocabulary import CampaignMode
from judges.queue import (
    MODES,
    campaign_status,
    create_campaign,
    list_campaigns,
    set_campaign_active,
)


@click.group()
def campaigns() -> None:
    """Judging campaigns: which debates people judge, how, and how many times."""


@campaigns.command("create")
@click.argument("name")
@click.option("--experiment", required=True, help="Name of the experiment whose debates are judged.")
@click.option("--judge", "judges", multiple=True,
              help="A judge allowed in the campaign (repeat; none: every judge).")
@click.option("--judgments-per-debate", "per_debate", type=click.IntRange(1, 100), default=1,
              show_default=True, help="How many judgments each debate gets.")
@click.option("--mode", type=click.Choice(MODES), default=CampaignMode.WHOLE.value, show_default=True,
              help="whole: the full transcript; stepped: one round at a time, a verdict each.")
@click.option("--reveal/--no-reveal", default=True, show_default=True,
              help="Show the correct answer after the judge submits.")
@click.option("--allow-repeats", is_flag=True, default=False,
              help="Let judges get questions they saw elsewhere (other campaigns, "
                   "experiments, imports, their own debates). Off by default.")
@db_option
def create(name: str, experiment: str, judges: tuple[str, ...], per_debate: int, mode: str,
           reveal: bool, allow_repeats: bool, db_url: str | None) -> None:
    """Create campaign NAME over an experiment's finished debates."""
    store = open_store(db_url)
    c = create_campaign(store, name=name, experiment=experiment, judges=list(judges) or None,
                        judgments_per_debate=per_debate, mode=mode, reveal_truth=reveal,
                        allow_repeats=allow_repeats)
    who = ", ".join(c.judges) if c.judges else "every judge"
    click.echo(f"campaign {c.name!r} (id {c.id}) on {c.experiment!r}: {c.mode}, "
               f"{c.judgments_per_debate} judgment(s) per debate, "
               f"{'reveal' if c.reveal_truth else 'no reveal'}, judges: {who}; "
               f"{'repeats allowed' if c.allow_repeats else 'no question seen before'}")


@campaigns.command("list")
@db_option
def list_cmd(db_url: str | None) -> None:
    """Campaigns with their progress."""
    store = open_store(db_url)
    for c in list_campaigns(store):
        st = campaign_status(store, c.id)
        click.echo(f"{c.id}\t{c.name}\t{c.experiment}\t{c.mode}\t"
                   f"{'active' if c.active else 'closed'}\t{st.submitted}/{st.total} judgments"
                   f"\t{st.assigned - st.submitted} open")


@campaigns.command("close")
@click.argument("campaign_id", type=int)
@db_option
def close(campaign_id: int, db_url: str | None) -> None:
    """Stop handing out debates of a campaign. Debates already claimed may still be
    submitted within their lease (an hour after the judge's last action); nothing else."""
    set_campaign_active(open_store(db_url), campaign_id, False)
    click.echo(f"campaign {campaign_id} closed")


@campaigns.command("open")
@click.argument("campaign_id", type=int)
@db_option
def reopen(campaign_id: int, db_url: str | None) -> None:
    """Hand out a closed campaign's debates again."""
    set_campaign_active(open_store(db_url), campaign_id, True)
    click.echo(f"campaign {campaign_id} open")
