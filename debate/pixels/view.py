"""What a person judging a pixel debate is shown: the revealed pixels and the two claims.

No ground truth: the picture holds only the revealed pixels (unrevealed cells are drawn
in a distinct hatched colour), and the claims come in display order, not marked true or
false. Each revealed cell is outlined in its revealer's colour (A blue, B orange).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw
from sqlalchemy import select

from debate.errors import UserError
from debate.store.db import Store
from debate.store.models import Debate, Question, Turn
from debate.vocabulary import SeatRole, TurnStatus

ROLE_COLOURS = {SeatRole.A: (31, 119, 180), SeatRole.B: (255, 127, 14)}
HIDDEN = (196, 214, 232)
HATCH = (160, 184, 208)


@dataclass(frozen=True)
class RevealedPixel:
    role: str
    row: int
    col: int
    value: int


@dataclass(frozen=True)
class PixelDebateView:
    png: bytes
    claims: tuple[str, str]  # display order: debater A's claim, then B's
    revealed: tuple[RevealedPixel, ...]
    shape: tuple[int, int]


def render_png(shape: tuple[int, int], max_value: int, revealed: list[RevealedPixel],
               cell: int | None = None) -> bytes:
    height, width = shape
    cell = cell or max(8, 320 // max(height, width))
    img = Image.new("RGB", (width * cell, height * cell), HIDDEN)
    draw = ImageDraw.Draw(img)
    for r in range(height):  # hatch every hidden cell so it cannot be read as a value
        for c in range(width):
            x, y = c * cell, r * cell
            draw.line([(x, y + cell - 1), (x + cell - 1, y)], fill=HATCH, width=1)
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline=(230, 236, 242))
    line = max(2, cell // 10)
    for p in revealed:
        ink = 255 - round(255 * min(max(p.value, 0), max_value) / max_value)
        x, y = p.col * cell, p.row * cell
        draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(ink, ink, ink))
        draw.rectangle([x, y, x + cell - 1, y + cell - 1],
                       outline=ROLE_COLOURS.get(p.role, (0, 0, 0)), width=line)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pixel_debate_view(store: Store, debate_id: int, turns: int | None = None) -> PixelDebateView:
    """The picture and the claims of a stored pixel debate (the first `turns` turns if given)."""
    with store.session() as session:
        row = session.execute(
            select(Debate, Question).join(Question, Debate.question_id == Question.id)
            .where(Debate.id == debate_id)
        ).first()
        if row is None:
            raise UserError(f"debate {debate_id}: not found")
        debate, question = row
        if debate.protocol_spec.get("family") != "pixel":
            raise UserError(f"debate {debate_id}: not a pixel debate (protocol {debate.protocol!r})")
        rows = session.execute(
            select(Turn.role, Turn.meta).where(Turn.debate_id == debate_id, Turn.kind == "pixel",
                                               Turn.status == TurnStatus.OK)
            .order_by(Turn.step, Turn.id)
        ).all()
        meta = question.meta or {}
        shape = tuple(meta.get("shape", (8, 8)))
        max_value = int(meta.get("max_value", 16))
        claims = tuple(str(question.answers[i]) for i in debate.answer_order)
    if turns is not None:
        rows = rows[:turns]
    revealed = tuple(
        RevealedPixel(role, int(m["pixel"][0]), int(m["pixel"][1]), int(m["value"]))
        for role, m in rows
    )
    png = render_png((int(shape[0]), int(shape[1])), max_value, list(revealed))
    return PixelDebateView(png=png, claims=(claims[0], claims[1]), revealed=revealed,
                           shape=(int(shape[0]), int(shape[1])))
