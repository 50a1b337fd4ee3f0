"""The ID cross-reference table as the mapping layer sees it (a ReferenceResolver),
plus the small queries the engine makes about links."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .records import chunks
from .state.models import Link, Record
from .state.models.enums import LinkStatus


class LinkResolver:
    """Resolves references through ``links`` within one session, with a per-batch cache.

    Only active links count: a reference to a record deleted in the target must
    not be written as if it still existed.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._to_canonical: dict[tuple[str, str, str], str | None] = {}
        self._to_external: dict[tuple[str, str, str], str | None] = {}

    def to_canonical_id(self, entity: str, system: str, external_id: str) -> str | None:
        key = (entity, system, str(external_id))
        if key not in self._to_canonical:
            self._to_canonical[key] = self.session.scalar(
                select(Link.canonical_id).where(
                    Link.entity == entity,
                    Link.system == system,
                    Link.external_id == str(external_id),
                    Link.status == LinkStatus.ACTIVE,
                )
            )
        return self._to_canonical[key]

    def to_external_id(self, entity: str, canonical_id: str, system: str) -> str | None:
        key = (entity, str(canonical_id), system)
        if key not in self._to_external:
            self._to_external[key] = self.session.scalar(
                select(Link.external_id).where(
                    Link.entity == entity,
                    Link.canonical_id == str(canonical_id),
                    Link.system == system,
                    Link.status == LinkStatus.ACTIVE,
                )
            )
        return self._to_external[key]

    # -- a batch's references at once -----------------------------------
    def prefetch_canonical_ids(self, wanted: Iterable[tuple[str, str, str]]) -> None:
        """Read the links of many (entity, system, external id) at once: a batch of contacts resolves
        its accounts with a query per 500 instead of one each."""
        self._prefetch(wanted, self._to_canonical, lambda e, s, i: (e, s, i), Link.external_id, Link.canonical_id)

    def prefetch_external_ids(self, wanted: Iterable[tuple[str, str, str]]) -> None:
        """Read the links of many (entity, system, canonical id) at once (see prefetch_canonical_ids)."""
        self._prefetch(wanted, self._to_external, lambda e, s, i: (e, i, s), Link.canonical_id, Link.external_id)

    def _prefetch(self, wanted, cache: dict, key_of, given, sought) -> None:
        """Fill ``cache`` (keyed by ``key_of(entity, system, id)``) with the ``sought`` column of the active
        links whose ``given`` column is each wanted id; None where there is no such link."""
        groups: dict[tuple[str, str], set[str]] = defaultdict(set)
        for entity, system, value in wanted:
            if key_of(entity, system, value) not in cache:
                groups[(entity, system)].add(value)
        for (entity, system), ids in groups.items():
            for part in chunks(sorted(ids)):
                found = dict(self.session.connection().execute(
                    select(given, sought).where(
                        Link.entity == entity, Link.system == system, given.in_(part), Link.status == LinkStatus.ACTIVE,
                    )
                ).all())
                for value in part:
                    cache[key_of(entity, system, value)] = found.get(value)

    # -- business keys (ERP numbers) -------------------------------------
    def find_by_key(self, entity: str, field: str, value: str) -> str | None:
        """The record whose canonical ``field`` is ``value`` (e.g. the account with ERP number C0042)."""
        matches = list(
            self.session.scalars(
                select(Record.canonical_id)
                .where(Record.entity == entity, Record.deleted.is_(False), Record.values[field].as_string() == str(value))
                .limit(2)
            )
        )
        return matches[0] if len(matches) == 1 else None  # two records with one number: never guess

    def key_of(self, entity: str, canonical_id: str, field: str) -> str | None:
        record = self.session.get(Record, (entity, str(canonical_id)))
        value = record.values.get(field) if record is not None else None
        return None if value in (None, "") else str(value)

    def remember(self, entity: str, canonical_id: str, system: str, external_id: str) -> None:
        self._to_canonical[(entity, system, external_id)] = canonical_id
        self._to_external[(entity, canonical_id, system)] = external_id

    def forget(self, entity: str, canonical_id: str, system: str, external_id: str) -> None:
        self._to_canonical.pop((entity, system, external_id), None)
        self._to_external.pop((entity, canonical_id, system), None)


def link_of(session: Session, system: str, object: str, external_id: str) -> Link | None:
    return session.scalar(
        select(Link).where(Link.system == system, Link.object == object, Link.external_id == str(external_id))
    )


def links_of_record(session: Session, entity: str, canonical_id: str) -> dict[str, Link]:
    rows = session.scalars(select(Link).where(Link.entity == entity, Link.canonical_id == canonical_id))
    return {link.system: link for link in rows}
