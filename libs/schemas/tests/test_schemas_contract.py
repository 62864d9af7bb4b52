"""The committed JSON Schema / AsyncAPI documents are what the models generate."""

from __future__ import annotations

from scicat_schemas import contract, topics


def test_committed_contract_documents_are_current() -> None:
    stale = [
        name
        for name, content in contract.rendered().items()
        if not (contract.CONTRACT_DIR / name).exists()
        or (contract.CONTRACT_DIR / name).read_text(encoding="utf-8") != content
    ]
    assert not stale, (
        f"stale contract documents {stale}: run `uv run python -m scicat_schemas.contract` "
        "and commit the result"
    )


def test_asyncapi_has_a_channel_for_every_contract_topic_and_a_message_per_type() -> None:
    document = contract.asyncapi()
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == set(topics.CONTRACT_TOPICS)
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert "file.closed" in names
    assert "publication.requested" in names
    assert len(names) == 11


def test_every_payload_field_is_described() -> None:
    schemas = contract.json_schema()["$defs"]
    undocumented = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, spec in schema.get("properties", {}).items()
        if "description" not in spec
    ]
    assert not undocumented
