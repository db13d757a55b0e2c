"""The suppression list's table, owned by this package.

``SuppressionEntry`` is registered on the shared ``SQLModel.metadata`` like every other
table, so the one Alembic history (``sequencer/core/migrations``) builds it; its
migration environment imports this module. Nothing here imports ``sequencer``: the
engine reads the list through ``suppression.store``, never the other way round.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from suppression.columns import utc_column


class SuppressionEntry(SQLModel, table=True):
    """Someone who must not be contacted: an address, a whole domain, or an account."""

    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # email | domain | account
    value: str = Field(index=True, max_length=320)  # normalised address / domain / account id
    reason: str  # unsubscribed | hard_bounce | complaint | manual | customer | competitor | ...
    note: str = ""
    added_by: str = ""
    added_at: datetime | None = utc_column()
    expires_at: datetime | None = utc_column()
