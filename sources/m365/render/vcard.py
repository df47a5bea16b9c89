"""vCard 3.0 (RFC 2426) rendering of a Graph contact."""

from __future__ import annotations

from typing import Any

from sources.m365.render.text import escape_value, fold, items


def _address(addr: Any) -> str | None:
    if not isinstance(addr, dict) or not any(addr.values()):
        return None
    parts = [
        "",
        "",
        str(addr.get("street") or ""),
        str(addr.get("city") or ""),
        str(addr.get("state") or ""),
        str(addr.get("postalCode") or ""),
        str(addr.get("countryOrRegion") or ""),
    ]
    return ";".join(escape_value(p) for p in parts)


def render_vcard(contact: dict[str, Any]) -> bytes:
    """A vCard for the contact (never fails on missing fields)."""
    e = escape_value
    lines = ["BEGIN:VCARD", "VERSION:3.0"]
    display = str(contact.get("displayName") or "").strip()
    given = str(contact.get("givenName") or "")
    surname = str(contact.get("surname") or "")
    middle = str(contact.get("middleName") or "")
    lines.append(f"FN:{e(display or ' '.join(x for x in (given, surname) if x) or '(no name)')}")
    title = str(contact.get("title") or "")
    suffix = str(contact.get("generation") or "")
    lines.append(f"N:{e(surname)};{e(given)};{e(middle)};{e(title)};{e(suffix)}")
    if contact.get("nickName"):
        lines.append(f"NICKNAME:{e(str(contact['nickName']))}")
    lines.extend(
        f"EMAIL;TYPE=INTERNET:{e(str(item['address']))}"
        for item in items(contact.get("emailAddresses"))
        if isinstance(item, dict) and item.get("address")
    )
    lines.extend(f"TEL;TYPE=WORK,VOICE:{e(str(p))}" for p in items(contact.get("businessPhones")))
    lines.extend(f"TEL;TYPE=HOME,VOICE:{e(str(p))}" for p in items(contact.get("homePhones")))
    if contact.get("mobilePhone"):
        lines.append(f"TEL;TYPE=CELL:{e(str(contact['mobilePhone']))}")
    org = [str(contact.get("companyName") or ""), str(contact.get("department") or "")]
    if any(org):
        lines.append("ORG:" + ";".join(e(x) for x in org))
    if contact.get("jobTitle"):
        lines.append(f"TITLE:{e(str(contact['jobTitle']))}")
    addresses = (("WORK", "businessAddress"), ("HOME", "homeAddress"), ("OTHER", "otherAddress"))
    for kind, key in addresses:
        adr = _address(contact.get(key))
        if adr:
            lines.append(f"ADR;TYPE={kind}:{adr}")
    if contact.get("birthday"):
        lines.append(f"BDAY:{e(str(contact['birthday'])[:10])}")
    if contact.get("businessHomePage"):
        lines.append(f"URL:{e(str(contact['businessHomePage']))}")
    categories = [str(c) for c in items(contact.get("categories"))]
    if categories:
        lines.append("CATEGORIES:" + ",".join(e(c) for c in categories))
    if contact.get("personalNotes"):
        lines.append(f"NOTE:{e(str(contact['personalNotes']))}")
    if contact.get("lastModifiedDateTime"):
        lines.append(f"REV:{e(str(contact['lastModifiedDateTime']))}")
    lines.append(f"UID:{e(str(contact.get('id') or ''))}")
    lines.append("END:VCARD")
    return b"".join(fold(line) for line in lines)
