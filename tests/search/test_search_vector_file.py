"""The node's vector file (junto.search.vectorstore): written by the search.index job, opened
memory-mapped by every serving process, new passages found before they are merged, deleted and
unpublished ones never shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from search_support import fresh_vectors, indexed_talk, search
from sqlalchemy import delete, func, select
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.search import passages as ps
from junto.search import vectors, vectorstore
from junto.storage.tables import SearchPassage

# Another serving process: opens the node's vectors as the web app does and searches one
# passage's own vector. It prints how many vectors it found in the file and in its private
# delta, and the nearest id.
OTHER_PROCESS = """
import asyncio, json, sys
from pathlib import Path
import numpy as np
from junto.search import vectorstore
from junto.storage.engine import make_engine, make_sessionmaker

async def main():
    url, folder, blob = sys.argv[1], Path(sys.argv[2]), bytes.fromhex(sys.argv[3])
    engine = make_engine(url)
    store = vectorstore.store_for(url, folder)
    async with make_sessionmaker(engine)() as db:
        await store.refresh(db)
    query = np.frombuffer(blob, dtype="<f2").astype(np.float32)
    nearest = store.search_now(query, 1)[0][0]
    await engine.dispose()
    print(json.dumps({"file": len(store.file or []), "delta": len(store.delta),
                      "nearest": nearest}))

asyncio.run(main())
"""


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_vectors()


def other_process(world: World, blob: bytes) -> dict[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, world.settings.effective_database_url,
         str(vectorstore.folder_of(world.settings)), blob.hex()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    answer: dict[str, int] = json.loads(run.stdout.strip().splitlines()[-1])
    return answer


async def passage_rows(world: World) -> list[SearchPassage]:
    async with world.node.db() as db:
        return list((await db.scalars(select(SearchPassage).order_by(SearchPassage.id))).all())


async def test_serving_processes_share_the_file_and_find_new_passages_at_once(
    world: World,
) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    reader = world.anonymous()
    conv = await indexed_talk(world, ana, ben)
    rows = await passage_rows(world)
    folder = vectorstore.folder_of(world.settings)

    # The index job wrote the file; another process maps it and holds no vector of its own.
    manifest = vectorstore.read_manifest(folder)
    assert manifest is not None and (folder / manifest.file).is_file()
    assert manifest.count == len(rows) and manifest.max_id == rows[-1].id
    assert rows[3].embedding is not None
    seen = other_process(world, rows[3].embedding)
    assert seen == {"file": len(rows), "delta": 0, "nearest": rows[3].id}

    # A passage committed after the file was written is found at once, by meaning alone,
    # before any merge; the file is still the old one.
    text = "Otters were seen playing under the old mill wheel at dawn."
    vector = (await ps.embed([text]))[0]
    async with world.node.db() as db:
        db.add(SearchPassage(conversation_id=conv.id, user_id=ben.id, start_ms=90_000,
                             end_ms=94_000, text=text, language="en",
                             embedding=ps.to_blob(vector[None, :])[0]))  # fmt: skip
        await db.commit()
    query = "playful aquatic mammals by a watermill at sunrise"
    assert (await search(reader, q=query))["results"][0]["text"] == text
    assert vectorstore.read_manifest(folder) == manifest
    added = (await passage_rows(world))[-1]
    assert added.embedding is not None
    assert other_process(world, added.embedding) == {
        "file": len(rows), "delta": 1, "nearest": added.id,
    }  # fmt: skip

    # The writer merges it: a new file replaces the old by rename, and readers re-open it.
    said = await vectorstore.update_file(world.node.db, folder, force=True)
    assert said.startswith("merged")
    merged = vectorstore.read_manifest(folder)
    assert merged is not None and merged.max_id == added.id and merged.count == len(rows) + 1
    assert not (folder / manifest.file).exists()
    assert (await search(reader, q=query))["results"][0]["text"] == text
    mine = vectorstore.node_store(world.settings)
    assert mine.file is not None and len(mine.file) == len(rows) + 1 and len(mine.delta) == 0
    assert other_process(world, added.embedding) == {
        "file": len(rows) + 1, "delta": 0, "nearest": added.id,
    }  # fmt: skip

    # Unpublished: its vectors are still in the file, but nothing of it comes out.
    assert (await ana.post(f"/api/conversations/{conv.slug}/unpublish")).status_code == 200
    assert (await search(reader, q=query))["total"] == 0
    assert (await search(reader, q="harbour grain timber"))["total"] == 0


async def test_the_file_is_rebuilt_when_much_of_it_was_deleted(world: World) -> None:
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    reader = world.anonymous()
    await indexed_talk(world, ana, ben)
    rows = await passage_rows(world)
    folder = vectorstore.folder_of(world.settings)
    # Half the passages go (a correction cut them, say): a fifth dead is enough to rebuild.
    gone = [r.id for r in rows[: len(rows) // 2]]
    async with world.node.db() as db:
        await db.execute(delete(SearchPassage).where(SearchPassage.id.in_(gone)))
        await db.commit()
        left = await db.scalar(select(func.count()).select_from(SearchPassage))
    assert (await vectorstore.update_file(world.node.db, folder)).startswith("rebuilt")
    manifest = vectorstore.read_manifest(folder)
    assert manifest is not None and manifest.count == left
    # What was deleted is not found even by its exact words; what is left still is.
    for r in (rows[0], rows[1], rows[-2], rows[-1]):
        texts = {h["text"] for h in (await search(reader, q=r.text, limit=50))["results"]}
        assert (r.text in texts) == (r.id not in gone), r.text


def test_the_file_finds_what_exhaustive_ranking_finds(tmp_path: Path) -> None:
    """Recall@10 of the int8 HNSW file against exact cosine over every vector, on clustered
    unit vectors (sentence embeddings cluster by topic)."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((200, vectors.DIM)).astype(np.float32)
    n = 8_000
    data = centres[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, vectors.DIM)).astype(
        np.float32
    )
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = vectors.new_index()
    index.add(np.arange(1, n + 1, dtype=np.uint64), data.astype(np.float16), threads=2)
    path = tmp_path / "v.usearch"
    index.save(str(path))
    shared = vectors.FileIndex(path)
    found = 0
    queries = rng.integers(0, n, 40)
    for row in queries:
        q = data[row] + 0.3 * rng.standard_normal(vectors.DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = set((np.argpartition(-(data @ q), 10)[:10] + 1).tolist())
        ids, _ = shared.search(q, 100)
        # As the hybrid search does: the candidates re-scored by their exact vectors.
        top = ids[np.argsort(-(data[ids - 1] @ q))[:10]]
        found += len(exact & set(top.tolist()))
    assert found / (10 * len(queries)) >= 0.95


def test_a_process_that_opens_the_vectors_first_can_still_embed_queries() -> None:
    """The web process imports the search modules at start and loads the embedder later, on
    its first search: usearch loaded before onnxruntime used to crash it (SIGSEGV)."""
    run = subprocess.run(
        [sys.executable, "-c", "import junto.search.vectorstore\n"
         "from junto.knowledge.embeddings import get_embedder\n"
         "print(get_embedder().embed(['where is the harbour']).shape)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.strip() == "(1, 384)"


async def test_a_process_without_the_file_holds_only_the_newest_passages(world: World) -> None:
    """An archive indexed before the vector file existed (or whose writer failed): a serving
    process keeps at most `delta_limit` of the newest passages in memory, not the archive,
    and has them all once the file is written."""
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    await indexed_talk(world, ana, ben)
    rows = await passage_rows(world)
    folder = vectorstore.folder_of(world.settings)
    for f in folder.iterdir():  # as before the file existed
        f.unlink()
    store = vectorstore.VectorStore(folder, delta_limit=5)
    async with world.node.db() as db:
        await store.refresh(db)
    assert store.file is None
    assert sorted(store.delta.ids.tolist()) == [r.id for r in rows[-5:]]
    assert rows[-1].embedding is not None
    query = np.frombuffer(rows[-1].embedding, dtype="<f2").astype(np.float32)
    assert store.search_now(query, 1)[0][0] == rows[-1].id

    assert (await vectorstore.update_file(world.node.db, folder)).startswith("rebuilt")
    async with world.node.db() as db:
        await store.refresh(db)
    assert store.file is not None and len(store.file) == len(rows) and len(store.delta) == 0
