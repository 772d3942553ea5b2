"""OASIS CAP 1.2 (Common Alerting Protocol) alerts: a public warning about an incident
(a blast cordon, a road closed) as an alert other systems (sirens, cell broadcast, media,
other agencies) take in, and the reading of one back.

Pure: no database, no network. The XML is built with ElementTree (never by pasting strings),
so `<`, `&` and quotes in any text are escaped; characters XML 1.0 cannot carry are dropped.
Element order follows the CAP 1.2 schema's sequences."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from safecity.core.errors import InvalidInput

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
RESPONSE_TYPES = (
    "Shelter",
    "Evacuate",
    "Prepare",
    "Execute",
    "Avoid",
    "Monitor",
    "Assess",
    "AllClear",
    "None",
)
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

_CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_CIRCLE = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s+({_NUMBER})\s*$")


def alert_to_cap(
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    event: str,
    headline: str,
    description: str,
    severity: str,
    urgency: str,
    certainty: str,
    lat: float,
    lon: float,
    area_desc: str,
    radius_km: float = 0.5,
    category: str = "Security",
    status: str = "Actual",
    msg_type: str = "Alert",
    scope: str = "Public",
    restriction: str | None = None,
    addresses: str | None = None,
    references: str | None = None,
    incidents: str | None = None,
    note: str | None = None,
    language: str = "en",
    response_type: str | None = None,
    expires: datetime | None = None,
    sender_name: str | None = None,
    instruction: str | None = None,
    web: str | None = None,
    contact: str | None = None,
) -> str:
    """A CAP 1.2 alert (an XML document as text) with one info block and one circular area
    ("lat,lon radius_km", WGS84).

    `sent` and `expires` must carry a timezone; they are written with their offset and
    whole seconds (UTC as -00:00: CAP forbids "Z"). `identifier` and `sender` must not hold
    spaces, commas, '<' or '&'. `scope` Restricted needs `restriction`, Private needs
    `addresses`; an Update or Cancel should name the alerts it follows in `references`
    ("sender,identifier,sent" each, space-separated). `incidents`: our incident id(s), so
    the receiver groups the alerts of one incident. Raises InvalidInput on a bad value."""
    for name, value in (("identifier", identifier), ("sender", sender)):
        if not value or re.search(r"[\s,<&]", value):
            raise InvalidInput(
                f"CAP {name} {value!r} must be non-empty, with no spaces, commas, '<' or '&'"
            )
    _one_of("status", status, STATUSES)
    _one_of("msgType", msg_type, MSG_TYPES)
    _one_of("scope", scope, SCOPES)
    _one_of("category", category, CATEGORIES)
    _one_of("urgency", urgency, URGENCIES)
    _one_of("severity", severity, SEVERITIES)
    _one_of("certainty", certainty, CERTAINTIES)
    if response_type is not None:
        _one_of("responseType", response_type, RESPONSE_TYPES)
    if scope == "Restricted" and not (restriction and restriction.strip()):
        raise InvalidInput("CAP scope Restricted needs a restriction (who may see the alert)")
    if scope == "Private" and not (addresses and addresses.strip()):
        raise InvalidInput("CAP scope Private needs addresses (who the alert goes to)")
    for name, text in (("event", event), ("areaDesc", area_desc)):
        if not text.strip():
            raise InvalidInput(f"CAP {name} must not be empty")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise InvalidInput(f"CAP circle latitude {lat} out of range (-90..90)")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise InvalidInput(f"CAP circle longitude {lon} out of range (-180..180)")
    if not (math.isfinite(radius_km) and radius_km >= 0):
        raise InvalidInput(f"CAP circle radius {radius_km} km must be a number >= 0")

    alert = ET.Element(f"{{{CAP_NS}}}alert")

    def add(parent: ET.Element, tag: str, text: str | None) -> None:
        if text is not None and text.strip():
            ET.SubElement(parent, f"{{{CAP_NS}}}{tag}").text = _xml_text(text.strip())

    add(alert, "identifier", identifier)
    add(alert, "sender", sender)
    add(alert, "sent", cap_time(sent, "sent"))
    add(alert, "status", status)
    add(alert, "msgType", msg_type)
    add(alert, "scope", scope)
    add(alert, "restriction", restriction)
    add(alert, "addresses", addresses)
    add(alert, "note", note)
    add(alert, "references", references)
    add(alert, "incidents", incidents)

    info = ET.SubElement(alert, f"{{{CAP_NS}}}info")
    add(info, "language", language)
    add(info, "category", category)
    add(info, "event", event)
    add(info, "responseType", response_type)
    add(info, "urgency", urgency)
    add(info, "severity", severity)
    add(info, "certainty", certainty)
    add(info, "expires", cap_time(expires, "expires") if expires is not None else None)
    add(info, "senderName", sender_name)
    add(info, "headline", headline)
    add(info, "description", description)
    add(info, "instruction", instruction)
    add(info, "web", web)
    add(info, "contact", contact)

    area = ET.SubElement(info, f"{{{CAP_NS}}}area")
    add(area, "areaDesc", area_desc)
    add(area, "circle", f"{_num(lat)},{_num(lon)} {_num(radius_km)}")

    body = ET.tostring(alert, encoding="unicode", default_namespace=CAP_NS)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def cap_time(dt: datetime, name: str = "time") -> str:
    """A CAP 1.2 dateTime: whole seconds with the UTC offset, UTC written as -00:00."""
    offset = dt.utcoffset()
    if offset is None:
        raise InvalidInput(f"CAP {name} must carry a timezone (CAP times have an offset)")
    if offset.total_seconds() % 60:
        raise InvalidInput(f"CAP {name} has an offset of {offset}: whole minutes only")
    text = dt.replace(microsecond=0).isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "-00:00"
    return text


def parse_cap(xml: str) -> dict[str, Any]:
    """Read a CAP 1.2 alert into a dict keyed by the CAP element names: the alert's own
    elements (times as aware datetimes; `code` a list) and `info`, a list of dicts
    (`category` and `responseType` lists; `area`, a list of dicts with `areaDesc`,
    `circle` [{lat, lon, radius_km}] and `polygon` [text]). InvalidInput when it is not a
    CAP 1.2 alert or misses a required element."""
    if re.search(r"<!(DOCTYPE|ENTITY)", xml, re.I):
        raise InvalidInput("CAP: DOCTYPE / ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(xml.strip())
    except ET.ParseError as e:
        raise InvalidInput(f"CAP: not well-formed XML ({e})") from None
    if root.tag != f"{{{CAP_NS}}}alert":
        raise InvalidInput(
            f"CAP: the root element is {root.tag!r}, not a CAP 1.2 alert ({{{CAP_NS}}}alert)"
        )

    def text(parent: ET.Element, tag: str, path: str, required: bool = False) -> str | None:
        el = parent.find(f"{{{CAP_NS}}}{tag}")
        value = el.text.strip() if el is not None and el.text else None
        if required and not value:
            raise InvalidInput(f"CAP: {path}/{tag} is missing", details={"field": f"{path}/{tag}"})
        return value

    def texts(parent: ET.Element, tag: str) -> list[str]:
        return [
            el.text.strip()
            for el in parent.findall(f"{{{CAP_NS}}}{tag}")
            if el.text and el.text.strip()
        ]

    def time(parent: ET.Element, tag: str, path: str, required: bool = False) -> datetime | None:
        value = text(parent, tag, path, required)
        if value is None:
            return None
        if not _CAP_TIME.match(value):
            raise InvalidInput(
                f"CAP: {path}/{tag} {value!r} is not a CAP time "
                f"(YYYY-MM-DDThh:mm:ss with an offset such as +05:00)",
                details={"field": f"{path}/{tag}"},
            )
        return datetime.fromisoformat(value)

    out: dict[str, Any] = {
        "identifier": text(root, "identifier", "alert", True),
        "sender": text(root, "sender", "alert", True),
        "sent": time(root, "sent", "alert", True),
        "status": text(root, "status", "alert", True),
        "msgType": text(root, "msgType", "alert", True),
        "source": text(root, "source", "alert"),
        "scope": text(root, "scope", "alert", True),
        "restriction": text(root, "restriction", "alert"),
        "addresses": text(root, "addresses", "alert"),
        "code": texts(root, "code"),
        "note": text(root, "note", "alert"),
        "references": text(root, "references", "alert"),
        "incidents": text(root, "incidents", "alert"),
        "info": [],
    }
    for i, info in enumerate(root.findall(f"{{{CAP_NS}}}info")):
        path = f"alert/info[{i}]"
        categories = texts(info, "category")
        if not categories:
            raise InvalidInput(
                f"CAP: {path}/category is missing", details={"field": f"{path}/category"}
            )
        block: dict[str, Any] = {
            "language": text(info, "language", path) or "en-US",
            "category": categories,
            "event": text(info, "event", path, True),
            "responseType": texts(info, "responseType"),
            "urgency": text(info, "urgency", path, True),
            "severity": text(info, "severity", path, True),
            "certainty": text(info, "certainty", path, True),
            "effective": time(info, "effective", path),
            "onset": time(info, "onset", path),
            "expires": time(info, "expires", path),
            "senderName": text(info, "senderName", path),
            "headline": text(info, "headline", path),
            "description": text(info, "description", path),
            "instruction": text(info, "instruction", path),
            "web": text(info, "web", path),
            "contact": text(info, "contact", path),
            "area": [],
        }
        for j, area in enumerate(info.findall(f"{{{CAP_NS}}}area")):
            apath = f"{path}/area[{j}]"
            circles = []
            for circle in texts(area, "circle"):
                m = _CIRCLE.match(circle)
                if m is None:
                    raise InvalidInput(
                        f"CAP: {apath}/circle {circle!r} is not 'lat,lon radius'",
                        details={"field": f"{apath}/circle"},
                    )
                circles.append(
                    {
                        "lat": float(m.group(1)),
                        "lon": float(m.group(2)),
                        "radius_km": float(m.group(3)),
                    }
                )
            block["area"].append(
                {
                    "areaDesc": text(area, "areaDesc", apath, True),
                    "polygon": texts(area, "polygon"),
                    "circle": circles,
                }
            )
        out["info"].append(block)
    return out


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"CAP {name} {value!r} is not one of {', '.join(allowed)}")


def _num(x: float) -> str:
    """A coordinate or radius: up to 6 decimals (10 cm), no trailing zeros."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _xml_text(text: str) -> str:
    return _XML_BAD_CHARS.sub("", text)
