"""Replay traffic from the real Online Retail purchase history
(datasets/online-retail, CC0 / CC BY 4.0 — see ATTRIBUTION.md there).

One contact per CustomerID (upserted before its first purchase, with its
country), one ``purchase`` interaction per invoice line, and cancellations
(invoice numbers starting with ``C``) as ``return`` interactions. Lines
without a CustomerID are skipped. Rows come in file order, which is time
order.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from models.inputs import ContactUpsert, Interaction

__all__ = ["DATASET_PATH", "replay_inputs"]

DATASET_PATH = (
    Path(__file__).resolve().parent.parent / "datasets/online-retail/online_retail.csv.gz"
)


def replay_inputs(
    path: Path = DATASET_PATH, limit: int | None = None
) -> Iterator[ContactUpsert | Interaction]:
    """Yield contact upserts and interactions in time order (``limit`` counts
    interactions)."""
    seen_contacts: set[str] = set()
    emitted = 0
    with gzip.open(path, "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
        for line_no, row in enumerate(reader, start=2):
            customer = row["CustomerID"].strip()
            if not customer:
                continue
            contact_id = f"c{customer.split('.')[0]}"
            occurred_at = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=UTC
            )
            if contact_id not in seen_contacts:
                seen_contacts.add(contact_id)
                yield ContactUpsert(
                    contact_id=contact_id,
                    attributes={
                        "country": row["Country"],
                        "first_seen_at": occurred_at.isoformat(),
                    },
                    updated_at=occurred_at,
                )
            quantity = int(row["Quantity"])
            unit_price = float(row["UnitPrice"])
            invoice = row["InvoiceNo"]
            yield Interaction(
                event_id=f"{invoice}-{line_no}",
                contact_id=contact_id,
                type="return" if invoice.startswith("C") else "purchase",
                occurred_at=occurred_at,
                properties={
                    "invoice": invoice,
                    "stock_code": row["StockCode"],
                    "description": row["Description"],
                    "quantity": quantity,
                    "unit_price": unit_price,
                    "amount": round(abs(quantity) * unit_price, 2),
                    "country": row["Country"],
                },
            )
            emitted += 1
            if limit is not None and emitted >= limit:
                return
