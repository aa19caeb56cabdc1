"""published conversations: knowledge, snippets, search passages with keyword indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _conversation(primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "conversation_id",
        sa.Integer(),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("published_at", _tz(), nullable=True))
    op.create_table(
        "conversation_knowledge",
        _conversation(primary_key=True),
        sa.Column("backend", sa.String(40), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("transcript_updated_at", _tz(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
    )
    op.create_table(
        "snippets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(16), nullable=False, unique=True),
        _conversation(),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("speakers", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("clip_path", sa.String(500), nullable=True),
        sa.Column("audio_path", sa.String(500), nullable=True),
        sa.Column("thumb_path", sa.String(500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
    )
    op.create_index("ix_snippets_conversation", "snippets", ["conversation_id", "id"])
    op.create_table(
        "search_passages",
        sa.Column("id", sa.Integer(), primary_key=True),
        _conversation(),
        sa.Column(
            "snippet_id",
            sa.Integer(),
            sa.ForeignKey("snippets.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        # Ids only grow, even on SQLite (no reuse of a deleted max rowid): each process's vector
        # index learns of new passages from max(id) alone (junto.search.vectorstore).
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_search_passages_conversation", "search_passages", ["conversation_id", "start_ms"]
    )
    op.create_index("ix_search_passages_snippet_id", "search_passages", ["snippet_id"])
    _keyword_index()


def _keyword_index() -> None:
    """The full-text index over search_passages.text, in each database's own way."""
    if op.get_bind().dialect.name == "postgresql":
        # English stemming for English passages, plain words for the rest.
        op.execute(
            "ALTER TABLE search_passages ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
            "to_tsvector(CASE WHEN language LIKE 'en%' THEN 'english'::regconfig "
            "ELSE 'simple'::regconfig END, text)) STORED"
        )
        op.execute("CREATE INDEX ix_search_passages_tsv ON search_passages USING GIN (tsv)")
        return
    # An external-content FTS5 table: the text is stored once (in search_passages) and the
    # triggers keep the index in step with every insert, update and delete.
    op.execute(
        "CREATE VIRTUAL TABLE search_fts USING fts5(text, content='search_passages', "
        "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER search_passages_ai AFTER INSERT ON search_passages BEGIN "
        "INSERT INTO search_fts(rowid, text) VALUES (new.id, new.text); END"
    )
    op.execute(
        "CREATE TRIGGER search_passages_ad AFTER DELETE ON search_passages BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    op.execute(
        "CREATE TRIGGER search_passages_au AFTER UPDATE OF text ON search_passages BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        "INSERT INTO search_fts(rowid, text) VALUES (new.id, new.text); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("search_passages_ai", "search_passages_ad", "search_passages_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    for table in ("search_passages", "snippets", "conversation_knowledge"):
        op.drop_table(table)
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("published_at")
