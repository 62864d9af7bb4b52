"""A long file list stored as several OrigDatablocks: layout, merge, and what a change rewrites."""

from __future__ import annotations

from datetime import UTC, datetime

from scicat_ingestor.datablock_parts import StoredParts, merged, operations, ours, writes
from scicat_ingestor.stored_documents import datablock_doc
from scicat_schemas.documents import DataFile, OrigDatablock

PID = "test/11012345/scan_0042"
T = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


def block(files: int, *, group: str = "11012345-dmgt") -> OrigDatablock:
    records = [DataFile(path=f"img_{n:05d}.cbf", size=n + 1, time=T) for n in range(files)]
    return OrigDatablock(
        _id=OrigDatablock.id_for(PID),
        datasetId=PID,
        size=sum(r.size for r in records),
        chkAlg=None,
        dataFileList=records,
        ownerGroup=group,
        accessGroups=[group, "p08staff"],
    )


def stored(whole: OrigDatablock, max_files: int) -> list[dict]:
    """What a new dataset's file list is stored as."""
    upserts, deletes = writes(None, None, whole, max_files)
    assert deletes == []
    return upserts


def test_a_long_list_is_stored_in_parts_of_at_most_max_files_and_merges_back() -> None:
    whole = block(2500)

    docs = stored(whole, 1000)

    assert [len(d["dataFileList"]) for d in docs] == [1000, 1000, 500]
    assert [d["pipelinePart"] for d in docs] == [0, 1, 2]
    assert [d["_id"] for d in docs] == [OrigDatablock.id_for(PID, k) for k in range(3)]
    assert docs[0]["_id"] == OrigDatablock.id_for(PID)
    assert sum(d["size"] for d in docs) == whole.size
    assert all(d["size"] == sum(f["size"] for f in d["dataFileList"]) for d in docs)
    assert {d["ownerGroup"] for d in docs} == {"11012345-dmgt"}
    again, layout = merged(list(reversed(docs)), 1000)
    assert again == whole
    assert layout == StoredParts(tuple(d["_id"] for d in docs), canonical=True)


def test_a_short_list_is_one_datablock_as_before() -> None:
    whole = block(20)

    [doc] = stored(whole, 1000)

    assert doc == datablock_doc(whole)
    assert merged([doc], 1000) == (whole, StoredParts((doc["_id"],), canonical=True))


def test_an_appended_file_rewrites_only_the_last_part() -> None:
    before = block(2500)
    _, layout = merged(stored(before, 1000), 1000)
    after = block(2501)
    after = after.model_copy(
        update={"dataFileList": [*before.dataFileList, after.dataFileList[-1]]}
    )

    upserts, deletes = writes(before, layout, after, 1000)

    assert [d["pipelinePart"] for d in upserts] == [2]
    assert len(upserts[0]["dataFileList"]) == 501
    assert deletes == []


def test_a_file_filling_the_last_part_starts_a_new_one() -> None:
    before = block(2000)
    _, layout = merged(stored(before, 1000), 1000)

    upserts, _ = writes(before, layout, block(2001), 1000)

    assert [(d["pipelinePart"], len(d["dataFileList"])) for d in upserts] == [(2, 1)]


def test_a_replaced_file_rewrites_its_part_and_new_groups_every_part() -> None:
    before = block(2500)
    _, layout = merged(stored(before, 1000), 1000)
    files = list(before.dataFileList)
    files[1500] = files[1500].model_copy(update={"size": 7})
    replaced = before.model_copy(update={"dataFileList": files})

    assert [d["pipelinePart"] for d in writes(before, layout, replaced, 1000)[0]] == [1]
    regrouped = before.model_copy(update={"ownerGroup": "other", "accessGroups": ["other"]})
    assert [d["pipelinePart"] for d in writes(before, layout, regrouped, 1000)[0]] == [0, 1, 2]
    assert writes(before, layout, before, 1000) == ([], [])


def test_a_single_datablock_of_an_earlier_version_is_rewritten_in_parts() -> None:
    legacy = block(2500)
    doc = datablock_doc(legacy)
    del doc["pipelinePart"]

    whole, layout = merged([doc], 1000)
    upserts, deletes = writes(whole, layout, whole, 1000)

    assert whole == legacy
    assert not layout.canonical
    assert [len(d["dataFileList"]) for d in upserts] == [1000, 1000, 500]
    assert deletes == []


def test_parts_written_with_another_size_are_rewritten_and_the_extra_ones_deleted() -> None:
    whole = block(2500)
    small_parts = stored(whole, 500)

    again, layout = merged(small_parts, 1000)
    upserts, deletes = writes(again, layout, again, 1000)

    assert again == whole and not layout.canonical
    assert [d["pipelinePart"] for d in upserts] == [0, 1, 2]
    assert deletes == [OrigDatablock.id_for(PID, 3), OrigDatablock.id_for(PID, 4)]
    assert [type(op).__name__ for op in operations(upserts, deletes)] == ["ReplaceOne"] * 3 + [
        "DeleteOne"
    ] * 2


def test_datablocks_of_the_dataset_that_are_not_parts_are_left_alone() -> None:
    docs = stored(block(1500), 1000)
    foreign = datablock_doc(block(3)) | {"_id": "made-in-scicat"}
    renamed = docs[1] | {"pipelinePart": 5}

    assert ours(PID, [*docs, foreign]) == docs
    assert ours(PID, [docs[0], renamed]) == [docs[0]]


def test_parts_known_to_be_absent_are_inserted_the_others_upserted() -> None:
    old, new = block(4), block(7)
    layout = StoredParts(tuple(OrigDatablock.id_for(PID, k) for k in range(2)), canonical=True)
    upserts, deletes = writes(old, layout, new, 3)

    known = operations(upserts, deletes, stored=layout.ids)
    unknown = operations(upserts, deletes)

    # parts 1 (changed) and 2 (new) are written; only part 2 is known to be absent
    assert [(type(op).__name__, op._doc.get("_id") or op._filter["_id"]) for op in known] == [
        ("ReplaceOne", OrigDatablock.id_for(PID, 1)),
        ("InsertOne", OrigDatablock.id_for(PID, 2)),
    ]
    assert {type(op).__name__ for op in unknown} == {"ReplaceOne"}
