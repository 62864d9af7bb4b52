"""Published datasets are public; the e-mail addresses of the people behind them are not."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from scicat_indexer.auth import Principal, current_principal
from scicat_indexer.redaction import is_email, redact_dataset, redact_facets
from scicat_schemas.documents import Dataset

if TYPE_CHECKING:
    from conftest import RunningIndexer

MEMBER = Principal(subject="ada", groups=frozenset({"11012345"}))
OUTSIDER = Principal(subject="eve", groups=frozenset({"other-group"}))

PUBLISHED_WITH_CONTACTS = {
    "ownerEmail": "max@example.org",
    "contactEmail": "ada@example.org",
    "principalInvestigators": ["ada@example.org", "Ada Lovelace"],
    "isPublished": True,
}


def test_members_see_contacts_and_others_do_not() -> None:
    dataset = {"ownerGroup": "11012345", "accessGroups": ["p08staff"], **PUBLISHED_WITH_CONTACTS}
    assert redact_dataset(dataset, MEMBER.groups) == dataset
    assert redact_dataset(dataset, {"p08staff"}) == dataset
    shown = redact_dataset(dataset, OUTSIDER.groups)
    assert "ownerEmail" not in shown
    assert "contactEmail" not in shown
    assert shown["principalInvestigators"] == ["Ada Lovelace"]
    assert dataset["contactEmail"] == "ada@example.org", "the stored copy is not modified"


def test_facets_never_list_email_addresses_and_keep_other_counts() -> None:
    facets = {
        "pi": [{"value": "ada@example.org", "count": 2}, {"value": "Ada Lovelace", "count": 3}]
    }
    assert redact_facets(facets) == {"pi": [{"value": "Ada Lovelace", "count": 3}]}
    assert is_email(" ada@example.org ")
    assert not is_email("Ada Lovelace")
    assert not is_email("@handle")


async def test_search_and_get_show_contacts_only_to_members(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    dataset = make_dataset("scan_042", **PUBLISHED_WITH_CONTACTS)
    await indexer.produce((dataset.pid, stored_event(dataset)))
    await indexer.wait_total(1, text="scan_042")

    async def as_caller(principal: Principal) -> tuple[dict[str, object], dict[str, object]]:
        indexer.app.dependency_overrides[current_principal] = lambda: principal
        page = await indexer.search(text="scan_042", facet=["pi"])
        one = (await indexer.http.get(f"/datasets/{dataset.pid}")).json()
        return page, one

    for principal in (Principal.anonymous(), OUTSIDER):
        page, one = await as_caller(principal)
        [item] = page["items"]
        for shown in (item, one):
            assert "ownerEmail" not in shown
            assert "contactEmail" not in shown
            assert shown["principalInvestigators"] == ["Ada Lovelace"]
        assert [b["value"] for b in page["facets"]["pi"]] == ["Ada Lovelace"]

    page, one = await as_caller(MEMBER)
    assert page["items"][0]["contactEmail"] == "ada@example.org"
    assert one["ownerEmail"] == "max@example.org"


async def test_free_text_finds_a_pi_e_mail_only_for_members(
    indexer: RunningIndexer,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
) -> None:
    dataset = make_dataset("scan_043", **PUBLISHED_WITH_CONTACTS)
    await indexer.produce((dataset.pid, stored_event(dataset)))
    await indexer.wait_total(1, text="scan_043")

    async def totals(principal: Principal) -> list[int]:
        indexer.app.dependency_overrides[current_principal] = lambda: principal
        return [(await indexer.search(text=t))["total"] for t in ("ada@exa", "a@e", "Lovelace")]

    assert await totals(Principal.anonymous()) == [0, 0, 1]
    assert await totals(OUTSIDER) == [0, 0, 1]
    assert await totals(MEMBER) == [1, 1, 1]
