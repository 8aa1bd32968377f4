"""Key rotation: a new active key, every sealed column re-sealed under it in batches, old keys then retired.

Run it with the bot stopped where you can. A running bot that meets a record sealed with a key it does not
know re-reads the key file once (see Sealer), but it keeps sealing new records with its old active key until
it is restarted, so retire old keys only after that restart (``key_ids_in_use`` tells which keys are needed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from mailvoice.crypto import Sealer, load_keyring, record_aad
from mailvoice.errors import StoreError, UnsealError
from mailvoice.store.db import Db
from mailvoice.store.schema import SEALED

if TYPE_CHECKING:
    from mailvoice.store.core import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    active: str
    """The new active key id."""
    resealed: int
    """Rows re-sealed."""
    retired: tuple[str, ...]
    """Key ids removed from the key file."""


def reseal_all(db: Db, batch_size: int = 200) -> int:
    """Re-seal every row whose key id is not the active one; each batch is its own transaction."""
    sealer = db.sealer
    active = sealer.active_key_id
    total = 0
    for name, (table, columns) in SEALED.items():
        while True:
            with db.write() as conn:
                query = (
                    select(table.c.id, *(table.c[c] for c in columns)).where(table.c.key_id != active).limit(batch_size)
                )
                rows = conn.execute(query).all()
                for row in rows:
                    values: dict[str, bytes] = {}
                    for column in columns:
                        blob = row._mapping[column]
                        if blob is None:
                            continue
                        aad = record_aad(name, row.id, column)
                        try:
                            values[column] = sealer.seal(sealer.open(blob, aad), aad)
                        except UnsealError as exc:
                            raise StoreError(
                                f"{name} row {row.id} does not open ({exc}); rotation stopped, "
                                "rows re-sealed so far keep the new key"
                            ) from exc
                    conn.execute(update(table).where(table.c.id == row.id).values(key_id=active, **values))
            total += len(rows)
            if len(rows) < batch_size:
                break
    log.info("store %s: re-sealed %d row(s) under key %s", db.where, total, active)
    return total


def rotate_keys(
    store: Store, keyring_path: Path, *, retire: bool = False, add_key: bool = True, batch_size: int = 200
) -> Rotation:
    """`mailvoice keys rotate`: add and activate a new key, re-seal everything, optionally retire old keys.

    With add_key=False it only finishes an interrupted rotation (re-seals under the current active key).
    """
    ring = load_keyring(keyring_path)
    missing = store.key_ids_in_use() - set(ring.keys)
    if missing:
        raise StoreError(
            f"records are sealed with key id(s) {', '.join(sorted(missing))}, which key file "
            f"{keyring_path} lacks (from MAILVOICE_KEY?); add them to it before rotating"
        )
    if add_key:
        ring = ring.rotate(keyring_path)
    store.use_sealer(Sealer(ring))
    resealed = store.reseal(batch_size)
    retired: tuple[str, ...] = ()
    if retire:
        unused = tuple(sorted(set(ring.keys) - store.key_ids_in_use() - {ring.active}))
        if unused:
            store.use_sealer(Sealer(ring.retire(keyring_path, unused)))
        retired = unused
    return Rotation(active=ring.active, resealed=resealed, retired=retired)
