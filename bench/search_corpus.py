"""The synthetic catalogue the search benchmark indexes: P-beamline datasets with mixed-unit
metadata over 200 beamtimes and their DOOR proposals (deterministic for a seed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from scicat_indexer.domain import CatalogueContext
from scicat_schemas.documents import Dataset

START = datetime(2024, 1, 1, tzinfo=UTC)
INSTRUMENTS = ["P02.1", "P03", "P08", "P10", "P11", "P21.2", "P23", "P64", "P65", "P66"]
SAMPLES = ["LaB6", "Si", "GaAs", "AgBeh", "CeO2", "lysozyme", "Fe3O4", "graphene", "ZnO", "TiO2"]
TECHNIQUES = ["SAXS", "WAXS", "XRD", "XAS", "XRF", "tomography"]
WORDS = ["thin", "film", "heating", "ramp", "nematic", "crystal", "strain", "in situ", "battery"]


def synthetic(count: int, seed: int = 4) -> tuple[list[Dataset], dict[str, CatalogueContext]]:
    """`count` datasets over 200 beamtimes and 10 instruments; metadata in mixed units."""
    rng = random.Random(seed)
    datasets, contexts = [], {}
    for n in range(count):
        beamtime = f"110{n % 200:05d}"
        instrument = INSTRUMENTS[n % len(INSTRUMENTS)]
        run = f"scan_{n:06d}"
        energy_kev = rng.uniform(3, 30)
        energy = (
            {"value": round(energy_kev * 1000, 1), "unit": "eV"}
            if n % 2
            else {"value": round(energy_kev, 4), "unit": "keV"}
        )
        dataset = Dataset.model_validate(
            {
                "pid": f"bench/{beamtime}/{run}",
                "datasetName": f"{rng.choice(WORDS)} {rng.choice(SAMPLES)} {run}",
                "description": " ".join(rng.choice(WORDS) for _ in range(8)),
                "sourceFolder": f"/asap3/petra3/gpfs/{instrument.lower()}/2024/data/"
                f"{beamtime}/raw/{run}",
                "creationTime": START + timedelta(minutes=7 * n),
                "creationLocation": f"/DESY/{instrument}",
                "ownerGroup": f"{beamtime}-dmgt",
                "accessGroups": [f"{beamtime}-clbt", f"{instrument.lower()}staff"],
                "proposalIds": [beamtime, f"DOOR-{n % 200 // 2}"],
                "instrumentIds": [instrument],
                "principalInvestigators": [f"pi{n % 50}@example.org"],
                "techniques": [{"pid": f"PaNET{n % 6}", "name": TECHNIQUES[n % 6]}],
                "keywords": ["scan", rng.choice(WORDS)],
                "isPublished": n % 3 == 0,
                "type": "raw" if n % 10 else "derived",
                "pipelineRevision": 1,
                "size": rng.randint(10**6, 10**10),
                "numberOfFiles": 5,
                "scientificMetadata": {
                    "energy": energy,
                    "exposure_time": {"value": rng.choice([0.1, 0.5, 1.0]), "unit": "s"},
                    "sample": {
                        "name": rng.choice(SAMPLES),
                        "temperature": {"value": round(rng.uniform(4, 400), 2), "unit": "K"},
                    },
                    "detector": {"name": "Pilatus 1M", "distance": {"value": 1.2, "unit": "m"}},
                    "operators": ["John Smith", "Jane Roe"],
                },
            }
        )
        datasets.append(dataset)
        contexts[dataset.pid] = CatalogueContext(
            files=tuple(f"img_{f:05d}.cbf" for f in range(5)),
            proposals=(beamtime_proposal(n % 200), door_proposal(n % 200 // 2)),
        )
    return datasets, contexts


def beamtime_proposal(b: int) -> dict[str, Any]:
    return {
        "proposalId": f"110{b:05d}",
        "type": "Beamtime",
        "parentProposalId": f"DOOR-{b // 2}",
        "ownerGroup": "x",
    }


def door_proposal(p: int) -> dict[str, Any]:
    """The proposal a beamtime belongs to; the raw `_bulk` documents carry it too, so both
    passes index the same documents."""
    return {
        "proposalId": f"DOOR-{p}",
        "type": "DOOR Proposal",
        "title": f"{WORDS[p % 9]} study {p}",
        "pi_firstname": "Ada",
        "pi_lastname": f"Lovelace{p}",
        "ownerGroup": "x",
    }
