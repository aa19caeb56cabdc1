"""`search.index`: {"conversation_id"} re-cuts a conversation's passages, {"snippet_id"} one
snippet's (and rewrites its captions file from the transcript as it is now). A target that no
longer exists loses its passages (the job then succeeds). Each run then brings the node's
shared vector file up to date (junto.search.vectorstore.update_file: a merge once enough new
passages wait, a rebuild once a fifth of it was deleted)."""

from __future__ import annotations

from sqlalchemy import delete

from junto import snippets
from junto.jobs.context import JobContext, JobFailed
from junto.search import passages as ps
from junto.search import vectorstore
from junto.storage.tables import Conversation, SearchPassage, Snippet

KIND = "search.index"


async def index(ctx: JobContext) -> None:
    conversation_id = ctx.payload.get("conversation_id")
    snippet_id = ctx.payload.get("snippet_id")
    if isinstance(snippet_id, int):
        await _snippet(ctx, snippet_id)
    elif isinstance(conversation_id, int):
        await _conversation(ctx, conversation_id)
    else:
        raise JobFailed("payload has neither conversation_id nor snippet_id")
    # The passages are committed (readers already find them exactly); the file follows.
    await vectorstore.update_file(ctx.db, vectorstore.folder_of(ctx.settings))


async def _conversation(ctx: JobContext, conversation_id: int) -> None:
    async with ctx.db() as db:
        conv = await db.get(Conversation, conversation_id)
        if conv is None:
            await db.execute(
                delete(SearchPassage).where(SearchPassage.conversation_id == conversation_id)
            )
            await db.commit()
            await ctx.progress(1.0, "the conversation is gone; its passages were removed")
            return
        found = await ps.conversation_passages(db, conversation_id)
    # Embedding takes seconds for a long talk: done outside any transaction.
    vectors = await ps.embed([p.text for p in found])
    async with ctx.db() as db:
        conv = await db.get(Conversation, conversation_id)
        if conv is None:
            return
        await ps.replace_conversation(db, conv, found, vectors)
        await db.commit()
    await ctx.progress(1.0, f"{len(found)} passages")


async def _snippet(ctx: JobContext, snippet_id: int) -> None:
    async with ctx.db() as db:
        snippet = await db.get(Snippet, snippet_id)
        conv = await db.get(Conversation, snippet.conversation_id) if snippet else None
        if snippet is None or conv is None:
            await db.execute(delete(SearchPassage).where(SearchPassage.snippet_id == snippet_id))
            await db.commit()
            await ctx.progress(1.0, "the snippet is gone; its passage was removed")
            return
        # The snippet's words may have been corrected since its files were cut
        # (junto.snippets.follow_correction queues this job): its captions follow too.
        await snippets.write_captions(db, ctx.settings.data_dir, snippet)
        passage = ps.snippet_passage(snippet)
        language = conv.language
    vector = await ps.embed([passage.text])
    async with ctx.db() as db:
        snippet = await db.get(Snippet, snippet_id)
        if snippet is None:
            return
        await ps.replace_snippet(db, snippet, language, vector[0])
        await db.commit()
    await ctx.progress(1.0, "1 passage")
