"""Company contacts (primary, billing, logistics) and locations: their writes.

Emporix assigns a company's contacts by kind and stores its physical locations;
so does this store.  A contact is an account of the tenant named as one kind
of contact of a company (an account may be several kinds, several accounts one
kind); a location is an id unique within its company, with a name and an
address in words.  Each change is audited like every directory write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from ..engine.directory import CONTACT_KINDS
from ..errors import DirectoryError, DirectoryValueError
from .directory_base import UNSET, DirectoryServiceBase
from .models import Account, Company, CompanyContact, Location

#: the longest location name and address kept (the columns' and the forms' limit)
MAX_LOCATION_TEXT = 200


def location_address(location: Location) -> str:
    """The address of a location as words (stored as ``{"text": ...}`` in its JSON column)."""
    address = location.address or {}
    return str(address.get("text", "")) if isinstance(address, Mapping) else str(address)


class CompanyPartsWrites(DirectoryServiceBase):
    """Writes to company contacts and locations; part of
    :class:`~approvalrules.store.directory_service.DirectoryService`."""

    # contacts

    def contacts_of(self, company: Company) -> list[tuple[str, str]]:
        """(kind, account id) of a company's contacts, by kind then account."""
        rows = self.session.execute(
            select(CompanyContact.kind, Account.external_id)
            .join(Account, CompanyContact.account_id == Account.id)
            .where(CompanyContact.company_id == company.id)
        ).all()
        order = {kind: index for index, kind in enumerate(CONTACT_KINDS)}
        return sorted(((k, a) for k, a in rows), key=lambda row: (order.get(row[0], 9), row[1]))

    def add_contact(self, company_id: str, account_id: str, kind: str) -> bool:
        """Name ``account_id`` as the ``kind`` contact of a company; False when it already was."""
        if kind not in CONTACT_KINDS:
            raise DirectoryValueError(
                "invalid_contact_kind",
                f"a contact is one of {', '.join(CONTACT_KINDS)}, not {str(kind)[:40]!r}",
                path="kind",
            )
        company, account = self.company(company_id), self.account(account_id)
        if self._find_contact(company, account, kind) is not None:
            return False
        self.session.add(CompanyContact(company_id=company.id, account_id=account.id, kind=kind))
        self.session.flush()
        self._audit(
            "company.contact_added", "company", company_id, {"account": account_id, "kind": kind}
        )
        return True

    def remove_contact(self, company_id: str, account_id: str, kind: str) -> None:
        company, account = self.company(company_id), self.account(account_id)
        found = self._find_contact(company, account, kind)
        if found is None:
            raise DirectoryError(
                "unknown_contact",
                f"{account_id!r} is not the {kind} contact of {company_id!r}; nothing to remove",
            )
        self.session.delete(found)
        self.session.flush()
        self._audit(
            "company.contact_removed", "company", company_id, {"account": account_id, "kind": kind}
        )

    def set_contacts(self, company_id: str, contacts: Iterable[Mapping[str, str]]) -> None:
        """Make a company's contacts exactly ``contacts`` (``{account, kind}`` each)."""
        wanted = [(c["kind"], c["account"]) for c in contacts]
        company = self.company(company_id)
        for kind, account_id in self.contacts_of(company):
            if (kind, account_id) not in wanted:
                self.remove_contact(company_id, account_id, kind)
        for kind, account_id in wanted:
            self.add_contact(company_id, account_id, kind)

    def _find_contact(self, company: Company, account: Account, kind: str) -> CompanyContact | None:
        return self.session.scalar(
            select(CompanyContact).where(
                CompanyContact.company_id == company.id,
                CompanyContact.account_id == account.id,
                CompanyContact.kind == kind,
            )
        )

    # locations

    def locations_of(self, company: Company) -> list[Location]:
        return list(
            self.session.scalars(
                select(Location)
                .where(Location.company_id == company.id)
                .order_by(Location.external_id)
            )
        )

    def upsert_location(
        self, company_id: str, location_id: str, *, name: str = UNSET, address: str = UNSET
    ) -> Location:
        """Create or change a company's location, by its id within the company."""
        for field, value in (("name", name), ("address", address)):
            if value is not UNSET and len(value or "") > MAX_LOCATION_TEXT:
                raise DirectoryValueError(
                    "invalid_value",
                    f"the location's {field} is {len(value):,} characters long; "
                    f"at most {MAX_LOCATION_TEXT} are kept",
                    path=field,
                )
        company = self.company(company_id)
        location = self._find_location(company, location_id)
        created = location is None
        if created:
            location = Location(company_id=company.id, external_id=location_id, name="", address={})
            self.session.add(location)
        values: dict[str, Any] = {"name": name}
        if address is not UNSET:
            values["address"] = {"text": address or ""}
        changes = self._apply(location, values)
        if "address" in changes:
            changes["address"] = address or ""
        if created or changes:
            self.session.flush()
            self._audit(
                "location.created" if created else "location.updated",
                "location",
                f"{company_id}/{location_id}",
                changes,
            )
        return location

    def remove_location(self, company_id: str, location_id: str) -> None:
        company = self.company(company_id)
        location = self._find_location(company, location_id)
        if location is None:
            raise DirectoryError(
                "unknown_location", f"company {company_id!r} has no location {location_id!r}"
            )
        self.session.delete(location)
        self.session.flush()
        self._audit("location.removed", "location", f"{company_id}/{location_id}")

    def set_locations(self, company_id: str, locations: Iterable[Mapping[str, str]]) -> None:
        """Make a company's locations exactly ``locations`` (``{id, name, address}`` each)."""
        wanted = list(locations)
        ids = {x["id"] for x in wanted}
        for location in self.locations_of(self.company(company_id)):
            if location.external_id not in ids:
                self.remove_location(company_id, location.external_id)
        for x in wanted:
            self.upsert_location(
                company_id, x["id"], name=x.get("name", ""), address=x.get("address", "")
            )

    def _find_location(self, company: Company, location_id: str) -> Location | None:
        return self.session.scalar(
            select(Location).where(
                Location.company_id == company.id, Location.external_id == location_id
            )
        )
