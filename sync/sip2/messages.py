"""The SIP2 messages the kiosk and the demo ILS use: their fixed fields and their field ids.

One table, `SPECS`, drives both encoding (width checks, required fields) and decoding (where the
fixed part ends). Field ids not listed here are still kept when decoding: 3M and ILS extensions
are common, and a kiosk must never choke on one.
"""

from __future__ import annotations

from dataclasses import dataclass

DATE_WIDTH = 18  # YYYYMMDDZZZZHHMMSS


@dataclass(frozen=True)
class Spec:
    command: str
    name: str
    fixed: tuple[tuple[str, int], ...]  # (field name, width) in order
    required: tuple[str, ...] = ()  # variable field ids that must be present (possibly empty)
    reply: str | None = None  # the response command, for requests

    @property
    def fixed_width(self) -> int:
        return sum(width for _, width in self.fixed)


_D = DATE_WIDTH
_SPECS = (
    Spec("93", "login", (("uid_algorithm", 1), ("pwd_algorithm", 1)), ("CN", "CO"), reply="94"),
    Spec("94", "login_response", (("ok", 1),)),
    Spec("99", "sc_status", (("status_code", 1), ("max_print_width", 3), ("protocol_version", 4)), reply="98"),
    Spec("98", "acs_status", (
        ("online_status", 1), ("checkin_ok", 1), ("checkout_ok", 1), ("acs_renewal_policy", 1),
        ("status_update_ok", 1), ("offline_ok", 1), ("timeout_period", 3), ("retries_allowed", 3),
        ("date_time_sync", _D), ("protocol_version", 4),
    ), ("AO", "BX")),
    Spec("23", "patron_status", (("language", 3), ("transaction_date", _D)), ("AO", "AA", "AC", "AD"), reply="24"),
    Spec("24", "patron_status_response", (("patron_status", 14), ("language", 3), ("transaction_date", _D)),
         ("AO", "AA", "AE")),
    Spec("63", "patron_information", (("language", 3), ("transaction_date", _D), ("summary", 10)),
         ("AO", "AA"), reply="64"),
    Spec("64", "patron_information_response", (
        ("patron_status", 14), ("language", 3), ("transaction_date", _D),
        ("hold_items_count", 4), ("overdue_items_count", 4), ("charged_items_count", 4),
        ("fine_items_count", 4), ("recall_items_count", 4), ("unavailable_holds_count", 4),
    ), ("AO", "AA", "AE")),
    Spec("11", "checkout", (("sc_renewal_policy", 1), ("no_block", 1), ("transaction_date", _D), ("nb_due_date", _D)),
         ("AO", "AA", "AB", "AC"), reply="12"),
    Spec("12", "checkout_response", (
        ("ok", 1), ("renewal_ok", 1), ("magnetic_media", 1), ("desensitize", 1), ("transaction_date", _D),
    ), ("AO", "AA", "AB", "AJ", "AH")),
    Spec("09", "checkin", (("no_block", 1), ("transaction_date", _D), ("return_date", _D)),
         ("AP", "AO", "AB", "AC"), reply="10"),
    Spec("10", "checkin_response", (
        ("ok", 1), ("resensitize", 1), ("magnetic_media", 1), ("alert", 1), ("transaction_date", _D),
    ), ("AO", "AB", "AQ")),
    Spec("17", "item_information", (("transaction_date", _D),), ("AO", "AB"), reply="18"),
    Spec("18", "item_information_response", (
        ("circulation_status", 2), ("security_marker", 2), ("fee_type", 2), ("transaction_date", _D),
    ), ("AB", "AJ")),
    Spec("29", "renew", (("third_party_allowed", 1), ("no_block", 1), ("transaction_date", _D), ("nb_due_date", _D)),
         ("AO", "AA"), reply="30"),
    Spec("30", "renew_response", (
        ("ok", 1), ("renewal_ok", 1), ("magnetic_media", 1), ("desensitize", 1), ("transaction_date", _D),
    ), ("AO", "AA", "AB", "AJ", "AH")),
    Spec("35", "end_patron_session", (("transaction_date", _D),), ("AO", "AA"), reply="36"),
    Spec("36", "end_session_response", (("end_session", 1), ("transaction_date", _D)), ("AO", "AA")),
    Spec("96", "request_sc_resend", ()),
    Spec("97", "request_acs_resend", ()),
)

SPECS: dict[str, Spec] = {spec.command: spec for spec in _SPECS}
BY_NAME: dict[str, Spec] = {spec.name: spec for spec in _SPECS}

# Variable field ids, for people reading decoded frames (`kiosk sip2 decode`).
FIELD_NAMES: dict[str, str] = {
    "AA": "patron_identifier", "AB": "item_identifier", "AC": "terminal_password",
    "AD": "patron_password", "AE": "personal_name", "AF": "screen_message", "AG": "print_line",
    "AH": "due_date", "AJ": "title_identifier", "AM": "library_name", "AN": "terminal_location",
    "AO": "institution_id", "AP": "current_location", "AQ": "permanent_location",
    "AS": "hold_items", "AT": "overdue_items", "AU": "charged_items", "AV": "fine_items",
    "AY": "sequence_number", "AZ": "checksum",
    "BD": "home_address", "BE": "email_address", "BF": "home_phone_number", "BG": "owner",
    "BH": "currency_type", "BI": "cancel", "BK": "transaction_id", "BL": "valid_patron",
    "BO": "fee_acknowledged", "BP": "start_item", "BQ": "end_item", "BT": "fee_type",
    "BU": "recall_items", "BV": "fee_amount", "BW": "expiration_date", "BX": "supported_messages",
    "BZ": "hold_items_limit", "CA": "overdue_items_limit", "CB": "charged_items_limit",
    "CC": "fee_limit", "CD": "unavailable_hold_items", "CF": "hold_queue_length",
    "CG": "fee_identifier", "CH": "item_properties", "CI": "security_inhibit",
    "CJ": "recall_date", "CK": "media_type", "CL": "sort_bin", "CM": "hold_pickup_date",
    "CN": "login_user_id", "CO": "login_password", "CP": "location_code", "CQ": "valid_patron_password",
    "CT": "destination_location", "CV": "alert_type", "CY": "hold_patron_id",
    "PA": "patron_expiration_date", "PB": "birth_date", "PC": "patron_class",
    # Also in the 2.00 spec, seen in 18/64 responses from Koha and Evergreen.
    "AL": "blocked_card_message", "BR": "queue_position", "BS": "pickup_location", "BY": "hold_type",
    "CR": "collection_code", "CS": "call_number", "DA": "hold_patron_name",
}

# Item circulation status (18, positions 0-1).
CIRCULATION_STATUS: dict[str, str] = {
    "01": "other", "02": "on order", "03": "available", "04": "charged",
    "05": "charged; not to be recalled until earliest recall date", "06": "in process",
    "07": "recalled", "08": "waiting on hold shelf", "09": "waiting to be re-shelved",
    "10": "in transit between library locations", "11": "claimed returned", "12": "lost", "13": "missing",
}

# Patron status (24/64, 14 positions, "Y" or blank).
PATRON_STATUS_FLAGS: tuple[str, ...] = (
    "charge_privileges_denied", "renewal_privileges_denied", "recall_privileges_denied",
    "hold_privileges_denied", "card_reported_lost", "too_many_items_charged",
    "too_many_items_overdue", "too_many_renewals", "too_many_claims_of_items_returned",
    "too_many_items_lost", "excessive_outstanding_fines", "excessive_outstanding_fees",
    "recall_overdue", "too_many_items_billed",
)

# 63's summary: the one position set to "Y" asks for that list (BP/BQ page it).
SUMMARY_POSITIONS: dict[str, int] = {
    "hold": 0, "overdue": 1, "charged": 2, "fine": 3, "recall": 4, "unavailable_hold": 5,
}
