"""CAP 1.2 alerts: well-formed, in the CAP 1.2 namespace, every required element present in
the order the CAP 1.2 schema prescribes, text escaped, and read back the same."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from safecity.core.errors import InvalidInput
from safecity.incidents.cap import CAP_NS, alert_to_cap, cap_time, parse_cap

PKT = ZoneInfo("Asia/Karachi")
SENT = datetime(2026, 11, 23, 12, 0, 0, 481_000, tzinfo=PKT)
N = f"{{{CAP_NS}}}"

#: The element sequences of the CAP 1.2 XML schema (OASIS CAP-V1.2, section 3.4): name ->
#: (minOccurs, maxOccurs), in order. No validating XSD library (lxml, xmlschema) is
#: installed, so the test checks these sequences itself.
ALERT_SEQ = [
    ("identifier", 1, 1), ("sender", 1, 1), ("sent", 1, 1), ("status", 1, 1),
    ("msgType", 1, 1), ("source", 0, 1), ("scope", 1, 1), ("restriction", 0, 1),
    ("addresses", 0, 1), ("code", 0, None), ("note", 0, 1), ("references", 0, 1),
    ("incidents", 0, 1), ("info", 0, None),
]  # fmt: skip
INFO_SEQ = [
    ("language", 0, 1), ("category", 1, None), ("event", 1, 1), ("responseType", 0, None),
    ("urgency", 1, 1), ("severity", 1, 1), ("certainty", 1, 1), ("audience", 0, 1),
    ("eventCode", 0, None), ("effective", 0, 1), ("onset", 0, 1), ("expires", 0, 1),
    ("senderName", 0, 1), ("headline", 0, 1), ("description", 0, 1), ("instruction", 0, 1),
    ("web", 0, 1), ("contact", 0, 1), ("parameter", 0, None), ("resource", 0, None),
    ("area", 0, None),
]  # fmt: skip
AREA_SEQ = [
    ("areaDesc", 1, 1), ("polygon", 0, None), ("circle", 0, None), ("geocode", 0, None),
    ("altitude", 0, 1), ("ceiling", 0, 1),
]  # fmt: skip
CAP_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$"  # the schema's dateTime pattern


def check_sequence(el: ET.Element, seq: list[tuple[str, int, int | None]]) -> None:
    names = []
    for child in el:
        assert child.tag.startswith(N), f"{child.tag} is outside the CAP 1.2 namespace"
        names.append(child.tag[len(N) :])
    i = 0
    for name, lo, hi in seq:
        n = 0
        while i < len(names) and names[i] == name:
            i, n = i + 1, n + 1
        assert n >= lo, f"<{el.tag}> lacks required <{name}>"
        assert hi is None or n <= hi, f"<{el.tag}> has {n} <{name}>"
    assert i == len(names), f"<{el.tag}>: <{names[i]}> is unknown or out of order: {names}"


def blast_alert(**changes: Any) -> str:
    args: dict[str, Any] = {
        "identifier": "KPP-CCP-4817-1",
        "sender": "command.centre@police.kp.gov.pk",
        "sent": SENT,
        "event": "Explosion",
        "headline": 'Blast near Qissa Khwani Bazaar: cordon <500 m> & "roads closed"',
        "description": "An explosion was reported at 11:52 near Qissa Khwani Bazaar.\n"
        "Police & Rescue 1122 on scene; keep clear of the area <until further notice>.",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "lat": 34.00832,
        "lon": 71.57493,
        "radius_km": 0.5,
        "area_desc": "Qissa Khwani Bazaar & Kabuli Gate, Peshawar",
        "incidents": "4817",
        "response_type": "Avoid",
        "expires": SENT + timedelta(hours=6),
        "sender_name": "Capital City Police Peshawar — Command & Control",
        "instruction": "Avoid Qissa Khwani, Kabuli Gate and Khyber Bazaar; follow police "
        "directions.",
        "contact": "15",
    }
    args.update(changes)
    return alert_to_cap(**args)


def test_alert_is_cap_1_2_with_required_elements_in_schema_order() -> None:
    xml = blast_alert()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml)
    assert root.tag == f"{N}alert"
    assert 'xmlns="urn:oasis:names:tc:emergency:cap:1.2"' in xml
    check_sequence(root, ALERT_SEQ)
    (info,) = root.findall(f"{N}info")
    check_sequence(info, INFO_SEQ)
    (area,) = info.findall(f"{N}area")
    check_sequence(area, AREA_SEQ)

    def text(el: ET.Element, tag: str) -> str | None:
        return el.findtext(f"{N}{tag}")

    assert text(root, "identifier") == "KPP-CCP-4817-1"
    assert text(root, "sender") == "command.centre@police.kp.gov.pk"
    assert text(root, "sent") == "2026-11-23T12:00:00+05:00"
    assert text(root, "status") == "Actual"
    assert text(root, "msgType") == "Alert"
    assert text(root, "scope") == "Public"
    assert text(root, "incidents") == "4817"
    assert text(info, "category") == "Security"
    assert text(info, "event") == "Explosion"
    assert text(info, "urgency") == "Immediate"
    assert text(info, "severity") == "Severe"
    assert text(info, "certainty") == "Observed"
    assert text(info, "expires") == "2026-11-23T18:00:00+05:00"
    assert text(area, "areaDesc") == "Qissa Khwani Bazaar & Kabuli Gate, Peshawar"
    assert text(area, "circle") == "34.00832,71.57493 0.5"
    for el, tag in ((root, "sent"), (info, "expires")):
        assert re.match(CAP_TIME, text(el, tag) or ""), tag


def test_the_sequence_check_catches_disorder() -> None:
    root = ET.fromstring(blast_alert())
    scope = root.find(f"{N}scope")
    assert scope is not None
    root.remove(scope)
    with pytest.raises(AssertionError, match="lacks required <scope>"):
        check_sequence(root, ALERT_SEQ)
    root.insert(5, scope)
    check_sequence(root, ALERT_SEQ)
    incidents = root.find(f"{N}incidents")
    assert incidents is not None
    root.remove(incidents)
    root.append(incidents)  # after <info>
    with pytest.raises(AssertionError, match="<incidents> is unknown or out of order"):
        check_sequence(root, ALERT_SEQ)


def test_special_characters_are_escaped() -> None:
    xml = blast_alert()
    assert 'cordon &lt;500 m&gt; &amp; "roads closed"' in xml
    assert "Qissa Khwani Bazaar &amp; Kabuli Gate" in xml
    assert "<500 m>" not in xml and "<until further notice>" not in xml
    # characters XML 1.0 cannot carry are dropped, so the document still parses
    xml = blast_alert(description="bell\x07 and nul\x00 and esc\x1b", event="Fire \x0c")
    got = parse_cap(xml)
    assert got["info"][0]["description"] == "bell and nul and esc"
    assert got["info"][0]["event"] == "Fire"
    # an injection attempt stays text
    evil = "</description><script>alert(1)</script><description>"
    got = parse_cap(blast_alert(description=evil))
    assert got["info"][0]["description"] == evil


def test_round_trip() -> None:
    got = parse_cap(blast_alert())
    assert got["identifier"] == "KPP-CCP-4817-1"
    assert got["sent"] == SENT.replace(microsecond=0)
    assert got["sent"].utcoffset() == timedelta(hours=5)
    assert (got["status"], got["msgType"], got["scope"]) == ("Actual", "Alert", "Public")
    (info,) = got["info"]
    assert info["category"] == ["Security"] and info["responseType"] == ["Avoid"]
    assert info["headline"] == 'Blast near Qissa Khwani Bazaar: cordon <500 m> & "roads closed"'
    assert info["description"].endswith("keep clear of the area <until further notice>.")
    assert "\n" in info["description"]
    assert info["senderName"] == "Capital City Police Peshawar — Command & Control"
    assert info["expires"] == SENT.replace(microsecond=0) + timedelta(hours=6)
    (area,) = info["area"]
    assert area["areaDesc"] == "Qissa Khwani Bazaar & Kabuli Gate, Peshawar"
    assert area["circle"] == [{"lat": 34.00832, "lon": 71.57493, "radius_km": 0.5}]


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (datetime(2026, 11, 23, 7, 0, 0, 999_999, tzinfo=UTC), "2026-11-23T07:00:00-00:00"),
        (datetime(2026, 11, 23, 12, 0, tzinfo=PKT), "2026-11-23T12:00:00+05:00"),
        (datetime(2026, 3, 1, 2, 30, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
         "2026-03-01T02:30:00-03:30"),
    ],
)  # fmt: skip
def test_cap_times_have_an_offset_never_z(dt: datetime, expected: str) -> None:
    assert cap_time(dt) == expected
    assert "Z" not in expected


def test_update_restricted_and_cancel() -> None:
    first = parse_cap(blast_alert())
    ref = f"{first['sender']},{first['identifier']},{cap_time(first['sent'])}"
    xml = blast_alert(
        identifier="KPP-CCP-4817-2",
        msg_type="Update",
        references=ref,
        scope="Restricted",
        restriction="Police, Rescue 1122 and district administration only",
        radius_km=1.25,
        status="Exercise",
    )
    root = ET.fromstring(xml)
    check_sequence(root, ALERT_SEQ)
    got = parse_cap(xml)
    assert got["references"] == ref
    assert got["msgType"] == "Update" and got["status"] == "Exercise"
    assert got["restriction"] == "Police, Rescue 1122 and district administration only"
    assert got["info"][0]["area"][0]["circle"][0]["radius_km"] == 1.25


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"sent": datetime(2026, 11, 23, 12, 0)}, "sent must carry a timezone"),
        ({"identifier": "KPP 4817"}, "identifier"),
        ({"sender": "a,b"}, "sender"),
        ({"severity": "Critical"}, "severity 'Critical' is not one of"),
        ({"urgency": "immediate"}, "urgency"),
        ({"certainty": "Sure"}, "certainty"),
        ({"category": "Police"}, "category"),
        ({"status": "Live"}, "status"),
        ({"msg_type": "Notice"}, "msgType"),
        ({"scope": "Restricted"}, "needs a restriction"),
        ({"scope": "Private"}, "needs addresses"),
        ({"lat": 91.0}, "latitude"),
        ({"lon": float("nan")}, "longitude"),
        ({"radius_km": -1.0}, "radius"),
        ({"area_desc": " "}, "areaDesc"),
    ],
)
def test_bad_values_are_invalid_input(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        blast_alert(**changes)


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        ("<alert", "not well-formed"),
        ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"/>', "not a CAP 1.2 alert"),
        ('<!DOCTYPE a [<!ENTITY x "y">]><alert/>', "DOCTYPE"),
        (f'<alert xmlns="{CAP_NS}"><identifier>x</identifier></alert>', "alert/sender"),
    ],
)
def test_parse_rejects_what_is_not_cap_1_2(xml: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_cap(xml)


def test_parse_names_a_missing_info_element() -> None:
    xml = blast_alert().replace("<certainty>Observed</certainty>", "")
    with pytest.raises(InvalidInput) as err:
        parse_cap(xml)
    assert err.value.details == {"field": "alert/info[0]/certainty"}
