"""EIDO (NENA-STA-021) export and import of incidents: the export validates against the
NENA schema in ../shared/standards/eido, round-trips through the import, and the import reads
NENA's own sample and names the field of a bad document."""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo

import pytest

from safecity.core.errors import InvalidInput
from safecity.incidents.eido import EidoImport, eido_to_call, incident_to_eido
from safecity.incidents.schemas import CallOut, IncidentDetail, TimelineEntry
from safecity.incidents.types import DEFAULT_TYPES

SHARED = Path(os.environ.get("SAFECITY_SHARED", Path(__file__).resolve().parents[3] / "shared"))
EIDO_DIR = SHARED / "standards" / "eido"
SAMPLE = EIDO_DIR / "Samples" / "Sample call transfer EIDO.json"

AGENCY_ID = "police.kp.gov.pk"
APCO_TO_CATEGORY: dict[str, str] = {}
for _t in DEFAULT_TYPES:  # the first type with an APCO code is its canonical one
    APCO_TO_CATEGORY.setdefault(_t.apco_code, _t.code)
CATEGORY_TO_APCO = {t.code: t.apco_code for t in DEFAULT_TYPES}
T0 = datetime(2026, 11, 23, 9, 41, 7, tzinfo=UTC)


def shared_or_skip(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"NENA EIDO schema not available: {path} (set SAFECITY_SHARED)")
    return path


# ------------------------------------------------------------------------- the incident


def peshawar_incident(**changes: Any) -> IncidentDetail:
    """A mobile snatching at gunpoint on University Road, Peshawar, reported by two callers,
    a unit dispatched and on scene, resolved with an arrest."""
    t = T0
    fields: dict[str, Any] = {
        "id": 4817,
        "source": "call",
        "category": "snatching",
        "priority": 2,
        "status": "resolved",
        "caller_number": "+92 300 5551234",
        "caller_name": "Imran Afridi",
        "description": 'Two men on a motorbike snatched a mobile at gunpoint near the "Board" '
        "bus stop & fled towards Hayatabad <black 125cc, no plate>\nCaller is safe.",
        "address": "University Road, near Board Bazaar, Peshawar",
        "lon": 71.4856,
        "lat": 34.0007,
        "station_id": 12,
        "tehsil_id": 3,
        "district_id": 1,
        "province_id": 1,
        "area_type": "urban",
        "inside_jurisdiction": True,
        "call_count": 2,
        "disposition": "arrested",
        "merged_into_id": None,
        "transferred_to": None,
        "received_at": t,
        "routed_at": t,
        "acknowledged_at": t + timedelta(seconds=50),
        "dispatched_at": t + timedelta(seconds=140),
        "en_route_at": t + timedelta(seconds=170),
        "on_scene_at": t + timedelta(minutes=9),
        "resolved_at": t + timedelta(minutes=41),
        "closed_at": None,
        "updated_at": t + timedelta(minutes=41),
    }
    fields.update(changes)
    detail = IncidentDetail.model_validate(fields)
    detail.timeline = [
        TimelineEntry(
            at=t,
            kind="received",
            actor="ct.sana",
            note="call (Snatching) from +92 300 5551234",
            data={},
        ),
        TimelineEntry(
            at=t,
            kind="routed",
            actor="system",
            note="routed to PS University Town",
            data={"station_id": 12, "inside": True},
        ),
        TimelineEntry(
            at=t + timedelta(seconds=50),
            kind="acknowledged",
            actor="sho.univtown",
            note="",
            data={},
        ),
        TimelineEntry(
            at=t + timedelta(seconds=95),
            kind="call_linked",
            actor="ct.bilal",
            note="another snatching call from 0345-1112223 linked as duplicate",
            data={},
        ),
        TimelineEntry(
            at=t + timedelta(seconds=140),
            kind="unit_dispatched",
            actor="disp.kamran",
            note="MOB-07 dispatched, ETA 6 min",
            data={"unit_id": 7, "assignment_id": 31, "eta_s": 362.0},
        ),
        TimelineEntry(
            at=t + timedelta(seconds=170),
            kind="unit_en_route",
            actor="disp.kamran",
            note="MOB-07 en route",
            data={"unit_id": 7},
        ),
        TimelineEntry(
            at=t + timedelta(minutes=9),
            kind="unit_on_scene",
            actor="disp.kamran",
            note="MOB-07 on scene",
            data={"unit_id": 7},
        ),
        TimelineEntry(
            at=t + timedelta(minutes=41),
            kind="resolved",
            actor="sho.univtown",
            note="one suspect arrested, mobile recovered <Samsung A54>",
            data={},
        ),
    ]
    detail.calls = [
        CallOut(
            id=9921,
            external_id="ivr-7781",
            incident_id=4817,
            source="call",
            category="snatching",
            caller_number="+92 300 5551234",
            caller_name="Imran Afridi",
            description="mobile snatched at gunpoint",
            lon=71.4856,
            lat=34.0007,
            linked_as_duplicate=False,
            received_at=t,
            taken_by="ct.sana",
        ),
        CallOut(
            id=9925,
            external_id=None,
            incident_id=4817,
            source="call",
            category="snatching",
            caller_number="0345-1112223",
            caller_name=None,
            description="saw two men snatching a phone at Board stop",
            lon=71.4861,
            lat=34.0011,
            linked_as_duplicate=True,
            received_at=t + timedelta(seconds=95),
            taken_by="ct.bilal",
        ),
    ]
    return detail


def export(detail: IncidentDetail | None = None, **kw: Any) -> dict[str, Any]:
    d = detail or peshawar_incident()
    apco = CATEGORY_TO_APCO[d.category]
    args: dict[str, Any] = {
        "agency_name": "Khyber Pakhtunkhwa Police, Capital City Police Peshawar",
        "agency_id": AGENCY_ID,
        "apco_code": apco,
        "station_name": "PS University Town",
        "type_label": "Snatching (mobile, purse)",
    }
    args.update(kw)
    doc = incident_to_eido(d, **args)
    wire: dict[str, Any] = json.loads(json.dumps(doc))  # what goes over the wire
    return wire


def import_(doc: Any, **kw: Any) -> EidoImport:
    args: dict[str, Any] = {
        "apco_to_category": APCO_TO_CATEGORY,
        "category_to_apco": CATEGORY_TO_APCO,
    }
    args.update(kw)
    return eido_to_call(doc, **args)


# ------------------------------------------------------------------------- the schema


def _fix_schema(node: Any) -> Any:
    """The published YAML has `minItems: 1,` (a string) in AgentType: read it as 1."""
    if isinstance(node, dict):
        out = {k: _fix_schema(v) for k, v in node.items()}
        for key in ("minItems", "maxItems"):
            if isinstance(out.get(key), str):
                out[key] = int(out[key].rstrip(", "))
        return out
    if isinstance(node, list):
        return [_fix_schema(v) for v in node]
    return node


def _strict(node: Any) -> Any:
    """The schema with no undeclared property names allowed in EIDO data components (the
    NENA schema itself allows any, so a misspelt name would pass unseen)."""
    node = copy.deepcopy(node)
    for schema in node.get("components", {}).get("schemas", {}).values():
        if "allOf" in schema:
            schema["unevaluatedProperties"] = False
        elif schema.get("title") == "Reference":
            schema["additionalProperties"] = False
    return node


@functools.cache
def eido_validator(strict: bool = False) -> Any:
    yaml = pytest.importorskip("yaml", reason="pyyaml reads the NENA OpenAPI schema")
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    root = shared_or_skip(EIDO_DIR / "openapi.yaml")

    @functools.cache
    def read(path: str) -> Any:
        return _fix_schema(yaml.safe_load(Path(path).read_text(encoding="utf-8")))

    def load(path: str) -> Resource[Any]:
        return Resource.from_contents(read(path), default_specification=DRAFT202012)

    def retrieve(uri: str) -> Resource[Any]:
        # Normalised, so the schema's "NIEMComponents//j.yaml" finds j.yaml.
        return load(os.path.normpath(unquote(urlparse(uri).path)))

    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    checker = jsonschema.FormatChecker()

    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parsed = datetime.fromisoformat(value)
        if "T" not in value or parsed.tzinfo is None:
            raise ValueError(f"{value!r} is not an RFC 3339 date-time with offset")
        return True

    checker.checks("date-time", raises=ValueError)(date_time)

    # The root schema is openapi.yaml itself (with its URI as $id), so that its local
    # "#/components/..." references resolve from it when checking unevaluatedProperties.
    openapi = read(str(root))
    schema = {
        **(_strict(openapi) if strict else openapi),
        "$id": root.as_uri(),
        "$ref": "#/components/schemas/EmergencyIncidentDataObjectType",
    }
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)


def schema_errors(doc: dict[str, Any], *, strict: bool = False) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in eido_validator(strict).iter_errors(doc)
    ]


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if set(node) == {"$ref"} and isinstance(node["$ref"], str):
            yield node["$ref"]
        for v in node.values():
            yield from refs_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs_in(v)


def ids_in(doc: dict[str, Any]) -> list[str]:
    out = []
    for key, value in doc.items():
        if key.endswith("Component"):
            for comp in value if isinstance(value, list) else [value]:
                out.append(comp["$id"])
    return out


def pidf_position(pidf: str) -> tuple[float, float]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(pidf)
    pos = root.find(".//{http://www.opengis.net/gml}Point/{http://www.opengis.net/gml}pos")
    assert pos is not None and pos.text
    lat, lon = (float(x) for x in pos.text.split())
    return lat, lon


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit() or c == "+")


# ------------------------------------------------------------------------- export


@pytest.mark.shared
def test_export_validates_against_the_nena_schema() -> None:
    doc = export()
    assert schema_errors(doc) == []
    # and uses no property name the schema does not declare
    assert schema_errors(doc, strict=True) == []


@pytest.mark.shared
def test_the_validator_catches_what_it_should() -> None:
    """The schema checks are real: a missing required field, a bad time and (strict) a
    misspelt property name each fail."""
    doc = export()
    no_version = {k: v for k, v in doc.items() if k != "eidoVersion"}
    assert any("'eidoVersion' is a required property" in e for e in schema_errors(no_version))
    bad_time = copy.deepcopy(doc)
    bad_time["callComponent"][0]["callStartTimestamp"] = "23/11/2026 09:41"
    assert any("is not a 'date-time'" in e for e in schema_errors(bad_time))
    typo = copy.deepcopy(doc)
    typo["incidentComponent"]["incidentTypeCommonRegistry"] = "ROBBERY"
    assert schema_errors(typo) == []  # the NENA schema alone lets it through
    assert any("incidentTypeCommonRegistry'" in e for e in schema_errors(typo, strict=True))


@pytest.mark.shared
@pytest.mark.parametrize(
    "changes",
    [
        # just received: no calls table rows, no timeline, no name or address, panic source
        {
            "status": "received",
            "routed_at": None,
            "acknowledged_at": None,
            "dispatched_at": None,
            "en_route_at": None,
            "on_scene_at": None,
            "resolved_at": None,
            "disposition": None,
            "caller_name": None,
            "address": None,
            "source": "panic",
            "call_count": 1,
            "_bare": True,
        },
        # merged into another incident
        {"status": "merged", "merged_into_id": 4790, "closed_at": T0 + timedelta(minutes=3)},
        # handed to Rescue 1122, outside every jurisdiction, no caller number (camera)
        {
            "status": "transferred",
            "transferred_to": "R1122",
            "inside_jurisdiction": False,
            "caller_number": None,
            "source": "camera",
            "_bare": True,
        },
    ],
    ids=["bare-new", "merged", "transferred"],
)
def test_other_incident_shapes_validate(changes: dict[str, Any]) -> None:
    bare = changes.pop("_bare", False)
    detail = peshawar_incident(**changes)
    if bare:
        detail.calls = []
        detail.timeline = []
    doc = export(detail, station_name=None, type_label=None, tz=ZoneInfo("Asia/Karachi"))
    assert schema_errors(doc) == []
    assert schema_errors(doc, strict=True) == []
    assert doc["callComponent"][0]["callStartTimestamp"] == "2026-11-23T14:41:07.000+05:00"
    if changes.get("merged_into_id"):
        (merge,) = doc["mergeComponent"]
        assert merge["incidentTrackingIdentifier"] == (
            f"urn:emergency:uid:incidentid:4790:{AGENCY_ID}"
        )
        assert merge["incidentMergeDirectionCode"] == "REPLACED"


def test_every_reference_resolves_and_ids_are_unique() -> None:
    doc = export()
    ids = ids_in(doc)
    assert len(ids) == len(set(ids))
    dangling = {r for r in refs_in(doc) if r not in set(ids)}
    assert dangling == set()


def test_export_carries_the_incident() -> None:
    d = peshawar_incident()
    doc = export(d)
    assert doc["$id"] == f"urn:emergency:uid:incidentid:4817:{AGENCY_ID}"
    assert doc["eidoVersion"] == "1.0"
    inc = doc["incidentComponent"]
    assert inc["incidentTypeCommonRegistryText"] == "ROBBERY"  # APCO code of snatching
    assert inc["incidentTypeInternalCode"] == "snatching"
    assert inc["incidentTypeInternalText"] == "Snatching (mobile, purse)"
    assert inc["incidentStatusInternalText"] == ["resolved"]
    assert inc["incidentStatusCommonRegistryText"] == ["Closed"]
    assert inc["internalIncidentId"] == "4817"
    assert inc["incidentPriorityInternalText"] == "P2"
    assert inc["incidentCommonPriorityNumber"] == 7
    assert inc["beatOrDispatchGroupText"] == "PS University Town"

    (agency,) = doc["agencyComponent"]
    assert agency["$id"] == AGENCY_ID and agency["incidentOwningAgencyIndicator"] is True
    assert agency["agencyType"] == ["police"]
    card = json.loads(agency["agencyJcard"])
    assert ["fn", {}, "text", "Khyber Pakhtunkhwa Police, Capital City Police Peshawar"] in (
        card[1]
    )

    (loc,) = doc["locationComponent"]
    assert loc["locationTypeDescriptionRegistryText"] == "CurrentIncident"
    assert pidf_position(loc["locationByValue"]) == (d.lat, d.lon)  # exactly
    assert (
        "<ca:LOC>University Road, near Board Bazaar, Peshawar</ca:LOC>" in (loc["locationByValue"])
    )

    calls = {c["$id"]: c for c in doc["callComponent"]}
    first = calls[f"urn:emergency:uid:callid:9921:{AGENCY_ID}"]
    assert first["callStartTimestamp"] == "2026-11-23T09:41:07.000+00:00"
    assert first["direction"] == "incoming" and first["localCallType"] == "call"
    comps = {
        c["$id"]: c
        for k, v in doc.items()
        if k.endswith("Component")
        for c in (v if isinstance(v, list) else [v])
    }
    callback = comps[first["callBackReference"]["$ref"]]
    assert callback["callBackInformationUri"] == ["tel:+923005551234"]
    second = calls[f"urn:emergency:uid:callid:9925:{AGENCY_ID}"]
    assert comps[second["callBackReference"]["$ref"]]["callBackInformationUri"] == [
        f"tel:0345-1112223;phone-context={AGENCY_ID}"
    ]
    (person_ref,) = first["personReference"]
    person = comps[person_ref["$ref"]]
    assert person["personIncidentRoleRegistryText"] == ["Caller"]
    assert person["ncPersonComponent"]["name"][0]["personFullName"][0]["value"] == ("Imran Afridi")
    # the description, HTML-escaped, is the first call's note
    (desc_ref,) = first["notesReference"]
    desc = comps[desc_ref["$ref"]]["notesActionComments"]
    assert "&quot;Board&quot; bus stop &amp; fled towards Hayatabad &lt;black 125cc" in desc
    assert "<br>Caller is safe." in desc

    # the timeline, in order, as notes stamped with their times and their agents
    notes = [comps[r["$ref"]] for r in inc["notesReference"]]
    summary, *timeline = notes
    assert len(timeline) == len(d.timeline)
    for note, entry in zip(timeline, d.timeline, strict=True):
        assert datetime.fromisoformat(note["lastUpdateTimeStamp"]) == entry.at
        assert f"<b>{entry.kind}</b>" in note["notesActionComments"]
    assert timeline[-1]["agentReference"] == {"$ref": f"sho.univtown@{AGENCY_ID}"}
    assert "agentReference" not in timeline[1]  # written by the system itself
    assert "&lt;Samsung A54&gt;" in timeline[-1]["notesActionComments"]
    text = summary["notesActionComments"]
    for label, at in [
        ("received", d.received_at),
        ("dispatched", d.dispatched_at),
        ("on scene", d.on_scene_at),
        ("resolved", d.resolved_at),
    ]:
        assert at is not None
        assert f"<li>{label}: {at.isoformat(timespec='milliseconds')}</li>" in text
    assert "<li>disposition: arrested</li>" in text

    (dispatch,) = doc["dispatchComponent"]
    assert dispatch["lastUpdateTimeStamp"] == "2026-11-23T09:43:27.000+00:00"
    assert dispatch["agentReference"] == {"$ref": f"disp.kamran@{AGENCY_ID}"}
    agents = {a["$id"]: a["agentRoleRegistryText"] for a in doc["agentComponent"]}
    assert agents[f"ct.sana@{AGENCY_ID}"] == ["Call Taking"]
    assert agents[f"disp.kamran@{AGENCY_ID}"] == ["Dispatching"]
    assert f"system@{AGENCY_ID}" not in agents


def test_export_is_deterministic_and_survives_odd_text() -> None:
    assert export() == export()
    odd = peshawar_incident(
        address='Qissa Khwani \x01Bazaar <&> "gate"', description="bell\x07 & <b>bold</b>"
    )
    doc = export(odd)
    loc = doc["locationComponent"][0]["locationByValue"]
    imported = import_(doc)
    assert imported.call.address == 'Qissa Khwani Bazaar <&> "gate"'
    assert imported.call.description == "bell & <b>bold</b>"
    assert pidf_position(loc) == (odd.lat, odd.lon)


def test_export_rejects_a_bad_agency_id() -> None:
    with pytest.raises(InvalidInput, match="agency_id"):
        export(agency_id="kp police")
    with pytest.raises(InvalidInput, match="apco_code"):
        export(apco_code=" ")


# ------------------------------------------------------------------------- import


def test_round_trip_keeps_location_category_and_caller() -> None:
    d = peshawar_incident()
    got = import_(export(d))
    call = got.call
    assert (call.lat, call.lon) == (d.lat, d.lon)
    assert call.category == "snatching"  # our own code: same APCO code, so exact
    assert d.caller_number is not None
    assert digits(call.caller_number) == digits(d.caller_number)
    assert call.caller_name == d.caller_name
    assert call.address == d.address
    assert call.description == d.description
    assert call.external_id == f"urn:emergency:uid:callid:9921:{AGENCY_ID}"
    assert got.source_incident_id == f"urn:emergency:uid:incidentid:4817:{AGENCY_ID}"
    assert got.source_internal_id == "4817"
    assert got.source_agency_id == AGENCY_ID
    assert got.source_agency_name == "Khyber Pakhtunkhwa Police, Capital City Police Peshawar"
    assert got.incident_type == "ROBBERY" and got.type_mapped
    assert got.common_priority == 7
    assert got.warnings == ()
    # every note comes along for the timeline: 2 call notes, the summary, 8 timeline entries
    assert len(got.notes) == 2 + 1 + len(d.timeline)
    resolved = got.notes[-1]
    assert (
        resolved.text == "resolved (sho.univtown): one suspect arrested, mobile recovered "
        "<Samsung A54>"
    )
    assert resolved.at == d.timeline[-1].at
    assert resolved.author == f"sho.univtown@{AGENCY_ID}"


def test_foreign_agency_type_goes_by_the_apco_code() -> None:
    """Another agency's internal code means nothing to us: the APCO code decides (ROBBERY is
    robbery, the first of our types with that code)."""
    got = import_(export(), category_to_apco=None)
    assert got.call.category == "robbery" and got.type_mapped
    doc = export()
    doc["incidentComponent"]["incidentTypeInternalCode"] = "fire"  # ours, but not ROBBERY
    assert import_(doc).call.category == "robbery"


def test_unknown_type_falls_back_or_is_rejected() -> None:
    doc = export()
    doc["incidentComponent"]["incidentTypeCommonRegistryText"] = "MAYDAY"
    doc["incidentComponent"].pop("incidentTypeInternalCode")
    got = import_(doc)
    assert got.call.category == "other" and not got.type_mapped
    assert got.incident_type == "MAYDAY"
    assert any("'MAYDAY'" in w for w in got.warnings)
    with pytest.raises(InvalidInput, match="unknown incident type 'MAYDAY'") as err:
        import_(doc, unknown_type="reject")
    assert err.value.details == {"field": "incidentComponent.incidentTypeCommonRegistryText"}


@pytest.mark.shared
def test_the_nena_sample_imports() -> None:
    """NENA's call-transfer sample has no incident component and no coordinates: its
    locations are a civic address (by value) and a URL (by reference)."""
    sample = json.loads(shared_or_skip(SAMPLE).read_text(encoding="utf-8"))
    assert schema_errors(sample) == []
    with pytest.raises(InvalidInput) as err:
        import_(sample)
    assert err.value.details == {"field": "locationComponent"}
    assert "by reference only (https://lrf.osp.com" in err.value.message
    assert "42 W Cellular Street, Wilmington, DE, US" in err.value.message

    asked: list[str] = []

    def geocode(address: str) -> tuple[float, float]:
        asked.append(address)
        return 39.7391, -75.5398

    got = import_(sample, geocode=geocode)
    assert asked == ["42 W Cellular Street, Wilmington, DE, US"]
    call = got.call
    assert (call.lat, call.lon) == (39.7391, -75.5398)
    assert call.caller_number == "8195551212"  # tel: preferred over the sip: URI
    assert call.address == "42 W Cellular Street, Wilmington, DE, US"
    assert call.category == "other" and not got.type_mapped and got.incident_type is None
    assert call.external_id == "urn:emergency:uid:callid:a56e556d871:bcf.state.pa.us"
    assert got.source_incident_id == "urn:emergency:uid:incidentid:a56e556d871:bcf.state.pa.us"
    assert got.source_agency_id == "state.pa.us"
    assert any("geocoded" in w for w in got.warnings)

    # The same sample with a geodetic caller location needs no geocoder.
    sample["locationComponent"][1].pop("locationByReferenceUrl")
    sample["locationComponent"][1]["locationByValue"] = (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
        'entity="pres:caller@example.com"><tuple id="t1"><status><gp:geopriv>'
        '<gp:location-info><gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">'
        '<gml:pos>39.74 -75.54</gml:pos><gs:radius uom="urn:ogc:def:uom:EPSG::9001">850'
        "</gs:radius></gs:Circle></gp:location-info><gp:usage-rules/></gp:geopriv></status>"
        "</tuple></presence>"
    )
    assert schema_errors(sample) == []
    got = import_(sample)
    assert (got.call.lat, got.call.lon) == (39.74, -75.54)
    assert got.call.address == "42 W Cellular Street, Wilmington, DE, US"


GML = 'xmlns:gml="http://www.opengis.net/gml"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"<gml:Point {GML}><gml:pos>34.0151 71.5249</gml:pos></gml:Point>", (34.0151, 71.5249)),
        (
            f'<gml:Point {GML} srsName="urn:ogc:def:crs:EPSG::4979">'
            "<gml:pos>34.0151 71.5249 350</gml:pos></gml:Point>",
            (34.0151, 71.5249),
        ),
        (
            f'<gml:Polygon {GML} srsName="urn:ogc:def:crs:EPSG::4326"><gml:exterior>'
            "<gml:LinearRing><gml:posList>34.0 71.5 34.0 71.6 34.2 71.6 34.2 71.5 34.0 71.5"
            "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>",
            (34.1, 71.55),
        ),
        ("geo:34.0151,71.5249;u=35", (34.0151, 71.5249)),
    ],
    ids=["point", "point-3d", "polygon", "geo-uri"],
)
def test_import_reads_location_shapes(value: str, expected: tuple[float, float]) -> None:
    doc = export()
    loc = doc["locationComponent"][0]
    if not value.startswith("geo:"):
        value = (
            '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
            'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" entity="pres:x@example.com">'
            '<tuple id="a"><status><gp:geopriv><gp:location-info>'
            f"{value}</gp:location-info><gp:usage-rules/></gp:geopriv></status></tuple>"
            "</presence>"
        )
    loc["locationByValue"] = value
    got = import_(doc)
    assert got.call.lat == pytest.approx(expected[0])
    assert got.call.lon == pytest.approx(expected[1])


def test_a_sip_callback_with_a_number_will_do() -> None:
    doc = export()
    for cb in doc["callbackComponent"]:
        cb["callBackInformationUri"] = ["sip:+923331234567@ims.example.pk;user=phone"]
    assert import_(doc).call.caller_number == "+923331234567"


def _drop(path: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        del node[last]

    return change


def _set(path: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return change


def _callbacks(uris: list[str]) -> Any:
    def change(doc: dict[str, Any]) -> None:
        for cb in doc["callbackComponent"]:
            cb["callBackInformationUri"] = uris

    return change


def _pidf_pos(pos: str, srs: str = "urn:ogc:def:crs:EPSG::4326") -> str:
    return (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml"'
        ' entity="pres:x@example.com"><tuple id="a"><status><gp:geopriv><gp:location-info>'
        f'<gml:Point srsName="{srs}"><gml:pos>{pos}</gml:pos></gml:Point></gp:location-info>'
        "<gp:usage-rules/></gp:geopriv></status></tuple></presence>"
    )


LOC0 = "locationComponent.0"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_drop("eidoVersion"), "eidoVersion", "missing"),
        (_set("eidoVersion", "2.0"), "eidoVersion", "unsupported version '2.0'"),
        (_drop("locationComponent"), "locationComponent", "carries no location"),
        (_set("locationComponent", {"oops": 1}), "locationComponent", "array of objects"),
        (_set(f"{LOC0}.locationByValue", None), "locationComponent", "no location with coord"),
        (
            _set(f"{LOC0}.locationByValue", "34.0 71.5"),
            "locationComponent[0].locationByValue",
            "not a well-formed PIDF-LO",
        ),
        (
            _set(f"{LOC0}.locationByValue", 34.0),
            "locationComponent[0].locationByValue",
            "must be a string",
        ),
        (
            _set(f"{LOC0}.locationByValue", _pidf_pos("134.0 71.5")),
            "locationComponent[0].locationByValue",
            "latitude 134.0 out of range",
        ),
        (
            _set(f"{LOC0}.locationByValue", _pidf_pos("34.0 71.5", "urn:ogc:def:crs:EPSG::32642")),
            "locationComponent[0].locationByValue",
            "only WGS84",
        ),
        (
            _set(
                f"{LOC0}.locationByValue",
                '<!DOCTYPE x [<!ENTITY a "aaaa">]><presence>&a;</presence>',
            ),
            "locationComponent[0].locationByValue",
            "DOCTYPE",
        ),
        (
            _set("incidentComponent.locationReference", [{"$ref": "nowhere"}]),
            "incidentComponent.locationReference[0]",
            "no locationComponent with $id 'nowhere'",
        ),
        (
            _drop("incidentComponent.incidentTypeCommonRegistryText"),
            "incidentComponent.incidentTypeCommonRegistryText",
            "missing",
        ),
        (_set("incidentComponent", "ROBBERY"), "incidentComponent", "must be an object"),
        (_drop("callbackComponent"), "callbackComponent", "no caller number"),
        (
            _callbacks(["sip:imran@example.pk", "mailto:imran@example.pk"]),
            "callbackComponent[].callBackInformationUri",
            "no usable phone number",
        ),
        (
            _set("callComponent.0.callBackReference", {"$ref": 5}),
            "callComponent[0].callBackReference",
            "must be a reference object",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_bad_documents_name_the_field(change: Any, field: str, words: str) -> None:
    doc = export()
    if field == "callbackComponent":  # the references to it go too
        for comp in [*doc["callComponent"], *doc["personComponent"]]:
            comp.pop("callBackReference", None)
    change(doc)
    with pytest.raises(InvalidInput) as err:
        import_(doc)
    assert err.value.details == {"field": field}
    assert field in err.value.message and words in err.value.message


def test_not_an_object_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        import_(["eidoVersion", "1.0"])


def test_overlong_text_is_cut_with_a_warning() -> None:
    doc = export()
    doc["locationComponent"][0]["locationByValue"] = doc["locationComponent"][0][
        "locationByValue"
    ].replace("University Road, near Board Bazaar, Peshawar", "Peshawar " * 40)
    got = import_(doc)
    assert got.call.address is not None and len(got.call.address) == 256
    assert got.call.address.endswith("…")
    assert "address cut to 256 characters" in got.warnings
