"""The human judging queue: campaigns, atomic "next debate", judgments, feedback, progress.

One module per job: common.py (limits, QueueError, the clock, assignment records),
writer.py (the write transaction and SQLite's per-process writer lock), campaigns.py,
claiming.py (the open assignment or an atomic claim), view.py (what a judge sees),
submissions.py (judgments, reveal, feedback), progress.py (counts and campaign status).
The names the web app, the CLI and the benchmarks use are re-exported here. The rows
themselves (campaigns, assignments, judgments, feedback) are written by
debate/store/judging.py and debate/store/judgments.py, inside the transactions composed
here.

`next_assignment` hands a judge one debate of a campaign so that no debate gets more
assignments than the campaign's `judgments_per_debate` and no judge gets a question
they were already given (both answer orders of a question share its question id).
An open assignment is returned again until it is submitted, so a page refresh shows the
same debate.

Concurrency: on PostgreSQL the judge's user row is locked first (one "next" per judge at a
time) and candidate debates are taken with SELECT ... FOR UPDATE SKIP LOCKED; the
assignment count is re-read after the lock is held (a fresh READ COMMITTED snapshot), so
two judges never both take a debate's last slot. On SQLite the whole transaction runs
under BEGIN IMMEDIATE (store.write_session), which serialises writers.

Blinding holds across experiments: "a question the judge has seen" is keyed on the
question's content (questions.content_key: text, answers, source), and counts every
assignment in any campaign (revealed or not), every judgment the person made and every
debate they argued, unless the campaign allows repeats (then only its own assignments).

A closed campaign hands out nothing new; an assignment claimed before the close may be
submitted within ASSIGNMENT_LEASE of the judge's last action on it; everything else is
refused. A campaign that is missing, closed or not open to a judge gets one answer,
which names nothing (`no_campaign`).

Nothing here returns ground truth except `SubmitResult.reveal`, after the final submit
and only when the campaign allows it.
"""

from __future__ import annotations

from debate.store.models import utcnow
from judges.queue.campaigns import (
    CampaignInfo,
    campaigns_for,
    create_campaign,
    get_campaign,
    list_campaigns,
    no_campaign,
    set_campaign_active,
)
from judges.queue.claiming import (
    judged_rounds,
    next_assignment,
    next_with_view,
    open_assignment,
    seen_question_keys,
)
from judges.queue.common import (
    LIKERT_KEYS,
    MAX_COMMENT,
    MAX_EXPLANATION,
    MAX_PERCENT,
    MIN_PERCENT,
    MODES,
    AssignmentInfo,
    QueueError,
)
from judges.queue.progress import (
    TOTALS_SECONDS,
    CampaignStatus,
    Progress,
    campaign_status,
    progress,
)
from judges.queue.submissions import (
    ASSIGNMENT_LEASE,
    Reveal,
    SubmitResult,
    check_explanation,
    check_probabilities,
    human_judge_agent,
    record_feedback,
    submit_judgment,
)
from judges.queue.view import JudgeView, judge_view
from judges.queue.writer import writing

__all__ = [
    "ASSIGNMENT_LEASE",
    "LIKERT_KEYS",
    "MAX_COMMENT",
    "MAX_EXPLANATION",
    "MAX_PERCENT",
    "MIN_PERCENT",
    "MODES",
    "TOTALS_SECONDS",
    "AssignmentInfo",
    "CampaignInfo",
    "CampaignStatus",
    "JudgeView",
    "Progress",
    "QueueError",
    "Reveal",
    "SubmitResult",
    "campaign_status",
    "campaigns_for",
    "check_explanation",
    "check_probabilities",
    "create_campaign",
    "get_campaign",
    "human_judge_agent",
    "judge_view",
    "judged_rounds",
    "list_campaigns",
    "next_assignment",
    "next_with_view",
    "no_campaign",
    "open_assignment",
    "progress",
    "record_feedback",
    "seen_question_keys",
    "set_campaign_active",
    "submit_judgment",
    "utcnow",
    "writing",
]
