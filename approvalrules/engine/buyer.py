"""Who orders: the buyer's account and membership, and its effective settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OrderError
from .directory import Account, Directory, Membership

if TYPE_CHECKING:  # annotations only: evaluate imports this module
    from .decision import Order
    from .evaluate import Evaluation


def resolve_buyer(directory: Directory, order: Order) -> tuple[Account, Membership]:
    """The buyer's account and its membership of the order's company (its default without one).

    Raises :class:`OrderError` ``unknown_buyer`` (no such account),
    ``not_a_member`` (not a member of ``order.company``) or
    ``no_default_company`` (several companies, none the default, none named).
    """
    account = directory.account(order.buyer)
    if account is None:
        raise OrderError(
            "unknown_buyer",
            f"buyer {order.buyer!r} is not an account of this tenant",
            path="order.buyer",
        )
    membership = directory.membership(order.buyer, order.company)
    if membership is None:
        if order.company:
            raise OrderError(
                "not_a_member",
                f"buyer {order.buyer!r} is not a member of company {order.company!r}",
                path="order.company",
            )
        raise OrderError(
            "no_default_company",
            f"buyer {order.buyer!r} belongs to several companies and none is the default;"
            " name order.company",
            path="order.company",
        )
    return account, membership


class BuyerSettings:
    """A membership's effective settings, with the sets the blocking checks test frozen once."""

    __slots__ = (
        "membership",
        "settings",
        "restricted_skus",
        "restricted_categories",
        "favourites",
        "scan_lines",
    )

    def __init__(self, membership: Membership, settings: dict):
        self.membership = membership
        self.settings = settings
        self.restricted_skus = frozenset(settings["restricted_skus"])
        self.restricted_categories = frozenset(settings["restricted_categories"])
        self.favourites = frozenset(settings["favourites"])
        self.scan_lines = bool(
            self.restricted_skus or self.restricted_categories or settings["favourites_only"]
        )


def buyer_settings_for(ev: Evaluation, membership: Membership) -> BuyerSettings:
    """The buyer's effective settings, computed once per (policy, directory, membership)."""
    buyers = ev.context().buyers
    key = (membership.account_id, membership.company_id)
    entry = buyers.get(key)
    if entry is None or entry.membership is not membership:
        entry = buyers[key] = BuyerSettings(membership, ev.policy.effective_settings(membership))
    return entry
