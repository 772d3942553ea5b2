"""NENA EIDO (NENA-STA-021, the JSON Emergency Incident Data Object) for incidents.

`incident_to_eido` writes one incident as an EIDO another agency's CAD can take in;
`eido_to_call` reads an EIDO someone sends us into a `CallIn` for the normal intake path.
Pure functions: no database, no network (a location given only by reference URL is not
fetched; a geocoder may be passed in for an EIDO that carries only a civic address).

How an incident maps onto the EIDO (`$id`s are deterministic, so exporting twice gives the
same document when nothing changed):

- document `$id`: `urn:emergency:uid:incidentid:<incident id>:<agency id>`;
- `incidentComponent`: the APCO ANS 2.103 code as `incidentTypeCommonRegistryText`, our own
  type code and label as `incidentTypeInternalCode`/`...InternalText`, our status as
  `incidentStatusInternalText` (plus Active/Closed in `incidentStatusCommonRegistryText`),
  priority as `incidentPriorityInternalText` ("P1".."P4") and `incidentCommonPriorityNumber`
  (0-10, 10 most urgent), the police station as `beatOrDispatchGroupText`;
- `locationComponent`: a PIDF-LO (RFC 4119/5491) in `locationByValue` with a WGS84 `gml:Point`
  and, when we have one, the address as a civic address (`LOC`);
- `callComponent` per call (start time, source as `localCallType`), each with a
  `callbackComponent` (tel: URI) and a `personComponent` for the caller (role Caller, NIEM
  person name); the call's description is a note on the call;
- `notesComponent`: a summary (status, milestones received..closed, disposition, transfer,
  merge) and one note per timeline entry, time-stamped, with the agent who wrote it;
- `dispatchComponent` per unit dispatched; `mergeComponent` when merged into another incident;
- `agencyComponent` (a jCard with the agency and station name) and `agentComponent` per
  person who took a call or wrote on the timeline.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from urllib.parse import quote

from pydantic import ValidationError

from safecity.core.errors import InvalidInput
from safecity.incidents.schemas import CallIn, IncidentDetail

EIDO_VERSION = "1.0"
JSONLD_CONTEXT = {"@vocab": "./JSON-LD_Contexts/EmergencyIncidentDataObjectType.jsonld"}

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
GP_NS = "urn:ietf:params:xml:ns:pidf:geopriv10"
GML_NS = "http://www.opengis.net/gml"
CA_NS = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
WGS84 = "urn:ogc:def:crs:EPSG::4326"

for _prefix, _uri in (("gp", GP_NS), ("gml", GML_NS), ("ca", CA_NS)):
    ET.register_namespace(_prefix, _uri)

#: Our statuses that are over for us (the rest are Active).
_CLOSED_STATUSES = frozenset({"resolved", "closed", "cancelled", "merged", "transferred"})
#: Our priority (P1 most urgent) -> EIDO common priority (0-10, 10 most urgent).
COMMON_PRIORITY = {1: 10, 2: 7, 3: 4, 4: 1}
_MILESTONES = (
    ("received_at", "received"),
    ("routed_at", "routed"),
    ("acknowledged_at", "acknowledged"),
    ("dispatched_at", "dispatched"),
    ("en_route_at", "en route"),
    ("on_scene_at", "on scene"),
    ("resolved_at", "resolved"),
    ("closed_at", "closed"),
)
#: Which location of a foreign EIDO locates the incident, best first (after those the
#: incident component itself references).
_LOCATION_RANK = {"CurrentIncident": 0, "Incident": 1, "Initial": 2, "Caller": 3}
#: The top-level arrays of data components (each component has a `$id`).
_ARRAY_COMPONENTS = (
    "mergeComponent",
    "linkComponent",
    "callComponent",
    "callbackComponent",
    "dispatchComponent",
    "notesComponent",
    "emergencyResourceComponent",
    "alarmsSensorsComponent",
    "agencyComponent",
    "agentComponent",
    "additionalDataComponent",
    "locationComponent",
    "personComponent",
    "vehicleComponent",
    "cautionComponent",
    "mediaComponent",
    "sharedCommunicationResourceComponent",
    "externalInformationSourceComponent",
)
_PHONE = re.compile(r"^\+?[0-9 ()-]{3,32}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")
_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# ================================================================================== export


def incident_to_eido(
    detail: IncidentDetail,
    *,
    agency_name: str,
    agency_id: str,
    apco_code: str,
    station_name: str | None = None,
    type_label: str | None = None,
    element_id: str | None = None,
    tz: tzinfo = UTC,
) -> dict[str, Any]:
    """One incident as an EIDO 1.0 document (a JSON-ready dict).

    `agency_id` is the agency's globally unique id, by NENA convention a domain name
    (e.g. "police.kp.gov.pk"); `apco_code` the APCO code of the incident's type (from the
    incident type table), `type_label` its label. `element_id` names the functional element
    issuing the EIDO (default "cad.<agency_id>"). Times are written with their UTC offset in
    `tz` (e.g. ZoneInfo("Asia/Karachi") for +05:00); naive datetimes are taken as UTC."""
    if not agency_id.strip() or any(c.isspace() for c in agency_id):
        raise InvalidInput("agency_id must be a non-empty id without spaces, e.g. a domain")
    if not agency_name.strip():
        raise InvalidInput("agency_name must not be empty")
    if not apco_code.strip():
        raise InvalidInput("apco_code must not be empty")
    return _Exporter(detail, agency_id=agency_id, tz=tz).build(
        agency_name=agency_name.strip(),
        apco_code=apco_code.strip(),
        station_name=station_name,
        type_label=type_label,
        element_id=element_id or f"cad.{agency_id}",
    )


@dataclass
class _Caller:
    number: str | None
    name: str | None
    call_ids: list[str] = field(default_factory=list)


class _Exporter:
    def __init__(self, detail: IncidentDetail, *, agency_id: str, tz: tzinfo) -> None:
        self.d = detail
        self.agency_id = agency_id
        self.tz = tz
        self.incident_urn = f"urn:emergency:uid:incidentid:{detail.incident_id}:{agency_id}"
        self.notes: list[dict[str, Any]] = []
        self.agents: dict[str, tuple[str, list[str]]] = {}  # actor -> ($id, roles)

    # ------------------------------------------------------------------ helpers
    def ts(self, dt: datetime) -> str:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(self.tz).isoformat(timespec="milliseconds")

    def cid(self, kind: str, key: object = "") -> str:
        """A globally unique, deterministic component id."""
        name = f"eido:{self.agency_id}/incident/{self.d.incident_id}/{kind}/{key}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def prologue(self, cid: str, at: datetime, actor: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "$id": cid,
            "lastUpdateTimeStamp": self.ts(at),
            "updatedByAgencyReference": {"$ref": self.agency_id},
        }
        agent = self.agent(actor, None) if actor else None
        if agent:
            out["updatedByAgentReference"] = {"$ref": agent}
        return out

    def agent(self, actor: str, role: str | None) -> str | None:
        """The agent id for a person (None for the system itself), recording the role."""
        if not actor or actor == "system" or actor.startswith("system:"):
            return None
        aid, roles = self.agents.setdefault(
            actor, (f"{quote(actor, safe='._-')}@{self.agency_id}", [])
        )
        if role and role not in roles:
            roles.append(role)
        return aid

    def note(
        self, key: str, at: datetime, html_text: str, actor: str | None = None
    ) -> dict[str, str]:
        n = self.prologue(self.cid("note", key), at, actor)
        n["notesActionComments"] = html_text
        agent = self.agent(actor, None) if actor else None
        if agent:
            n["agentReference"] = {"$ref": agent}
        self.notes.append(n)
        return {"$ref": n["$id"]}

    # ------------------------------------------------------------------ the document
    def build(
        self,
        *,
        agency_name: str,
        apco_code: str,
        station_name: str | None,
        type_label: str | None,
        element_id: str,
    ) -> dict[str, Any]:
        d = self.d
        ref_agency = {"$ref": self.agency_id}
        location = self.location()
        calls, callbacks, persons = self.calls(location["$id"])

        summary_ref = self.note("summary", d.updated_at, self.summary_html())
        timeline_refs: list[dict[str, str]] = []
        dispatches: list[dict[str, Any]] = []
        for i, entry in enumerate(d.timeline):
            if entry.kind.startswith("unit_"):
                self.agent(entry.actor, "Dispatching")
            ref = self.note(
                f"timeline/{i}",
                entry.at,
                _timeline_html(entry.kind, entry.actor, entry.note),
                entry.actor,
            )
            timeline_refs.append(ref)
            if entry.kind == "unit_dispatched":
                dispatch = self.prologue(self.cid("dispatch", i), entry.at, entry.actor)
                dispatch["agencyReference"] = ref_agency
                agent = self.agent(entry.actor, None)
                if agent:
                    dispatch["agentReference"] = {"$ref": agent}
                dispatch["notesReference"] = [ref]
                dispatches.append(dispatch)

        incident: dict[str, Any] = self.prologue(self.cid("incident"), d.updated_at)
        incident.update(
            {
                "incidentTypeCommonRegistryText": apco_code,
                "incidentTypeInternalCode": d.category,
                "incidentStatusInternalText": [d.status],
                "incidentStatusCommonRegistryText": [
                    "Closed" if d.status in _CLOSED_STATUSES else "Active"
                ],
                "internalIncidentId": str(d.incident_id),
                "locationReference": [{"$ref": location["$id"]}],
                "incidentPriorityInternalText": f"P{d.priority}",
                "notesReference": [summary_ref, *timeline_refs],
            }
        )
        if type_label:
            incident["incidentTypeInternalText"] = type_label
        if d.priority in COMMON_PRIORITY:
            incident["incidentCommonPriorityNumber"] = COMMON_PRIORITY[d.priority]
        if station_name:
            incident["beatOrDispatchGroupText"] = station_name
        if persons:
            incident["personReference"] = [{"$ref": p["$id"]} for p in persons]
        incident_agents = sorted({aid for aid, _ in self.agents.values()})
        if incident_agents:
            incident["agentReference"] = [{"$ref": a} for a in incident_agents]

        agency = self.prologue(self.agency_id, d.updated_at)
        agency.update(
            {
                "agencyJcard": _jcard(agency_name, station_name),
                "agencyRoleDescriptionRegistryText": ["CallReceiving", "Dispatching"],
                "agencyType": ["police"],
                "incidentOwningAgencyIndicator": True,
            }
        )
        agents = []
        for actor, (aid, roles) in self.agents.items():
            agent_comp = self.prologue(aid, d.updated_at)
            agent_comp.update(
                {
                    "agentJcard": _jcard(actor, station_name, kind="individual"),
                    "agentRoleRegistryText": roles or ["Dispatching"],
                    "agencyReference": ref_agency,
                }
            )
            agents.append(agent_comp)

        doc: dict[str, Any] = {
            "$id": self.incident_urn,
            "lastUpdateTimeStamp": self.ts(d.updated_at),
            "updatedByAgencyReference": ref_agency,
            "eidoVersion": EIDO_VERSION,
            "issuingElementIdentification": element_id,
            "incidentComponent": incident,
            "callComponent": calls,
            "agencyComponent": [agency],
            "locationComponent": [location],
            "notesComponent": self.notes,
        }
        if d.merged_into_id is not None:
            merge = self.prologue(self.cid("merge", d.merged_into_id), d.closed_at or d.updated_at)
            merge["incidentTrackingIdentifier"] = (
                f"urn:emergency:uid:incidentid:{d.merged_into_id}:{self.agency_id}"
            )
            merge["incidentMergeDirectionCode"] = "REPLACED"
            doc["mergeComponent"] = [merge]
        if callbacks:
            doc["callbackComponent"] = callbacks
        if dispatches:
            doc["dispatchComponent"] = dispatches
        if agents:
            doc["agentComponent"] = agents
        if persons:
            doc["personComponent"] = persons
        doc["@context"] = dict(JSONLD_CONTEXT)
        return doc

    def location(self) -> dict[str, Any]:
        d = self.d
        loc = self.prologue(self.cid("location"), d.received_at)
        loc["locationTypeDescriptionRegistryText"] = "CurrentIncident"
        loc["locationByValue"] = _pidf(
            entity=f"pres:incident-{d.incident_id}@{self.agency_id}",
            lat=d.lat,
            lon=d.lon,
            address=d.address,
            timestamp=self.ts(d.received_at),
        )
        return loc

    def calls(
        self, location_id: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        d = self.d
        rows: list[tuple[str, str, str | None, str | None, str, datetime, str | None]] = []
        for i, c in enumerate(d.calls):
            # The first call carries the incident's (current) description.
            text = d.description if i == 0 else c.description
            rows.append(
                (
                    f"urn:emergency:uid:callid:{c.id}:{self.agency_id}",
                    c.source,
                    c.caller_number,
                    c.caller_name,
                    text,
                    c.received_at,
                    c.taken_by,
                )
            )
        if not rows:  # an incident with no call row (older data): its own report is the call
            rows.append(
                (
                    f"urn:emergency:uid:callid:incident-{d.incident_id}:{self.agency_id}",
                    d.source,
                    d.caller_number,
                    d.caller_name,
                    d.description,
                    d.received_at,
                    None,
                )
            )

        callers: dict[tuple[str | None, str | None], _Caller] = {}
        calls = []
        for call_id, source, number, name, text, at, taken_by in rows:
            call = self.prologue(call_id, at, taken_by)
            call.update(
                {
                    "standardPrimaryCallType": "emergency",
                    "localCallType": source,
                    "direction": "incoming",
                    "callStartTimestamp": self.ts(at),
                    "callStateRegistryText": "callEnd",
                    "locationReference": [{"$ref": location_id}],
                }
            )
            if source == "call":
                call["answerDate"] = self.ts(at)
            agent = self.agent(taken_by, "Call Taking") if taken_by else None
            if agent:
                call["agentReference"] = [{"$ref": agent}]
            if text.strip():
                call["notesReference"] = [
                    self.note(f"call/{call_id}", at, _text_html(text), taken_by)
                ]
            if number or name:
                caller = callers.setdefault((number, name), _Caller(number, name))
                caller.call_ids.append(call_id)
            calls.append(call)

        callbacks: dict[str, dict[str, Any]] = {}
        persons = []
        for (number, name), caller in callers.items():
            person = self.prologue(self.cid("person", f"{number}/{name}"), d.received_at)
            person["personIncidentRoleRegistryText"] = ["Caller"]
            person["callIdentifier"] = caller.call_ids
            if name:
                person["ncPersonComponent"] = {"name": [{"personFullName": [{"value": name}]}]}
            if number:
                if number not in callbacks:
                    cb = self.prologue(self.cid("callback", number), d.received_at)
                    cb["callBackInformationUri"] = [_tel_uri(number, self.agency_id)]
                    callbacks[number] = cb
                cb_ref = {"$ref": callbacks[number]["$id"]}
                person["callBackReference"] = cb_ref
                for call in calls:
                    if call["$id"] in caller.call_ids:
                        call["callBackReference"] = cb_ref
            for call in calls:
                if call["$id"] in caller.call_ids:
                    call.setdefault("personReference", []).append({"$ref": person["$id"]})
            persons.append(person)
        return calls, list(callbacks.values()), persons

    def summary_html(self) -> str:
        d = self.d
        items = [f"status: {d.status}", f"priority: P{d.priority}"]
        for attr, label in _MILESTONES:
            at = getattr(d, attr)
            if at is not None:
                items.append(f"{label}: {self.ts(at)}")
        if d.disposition:
            items.append(f"disposition: {d.disposition}")
        if d.transferred_to:
            items.append(f"transferred to: {d.transferred_to}")
        if d.merged_into_id is not None:
            items.append(f"merged into incident {d.merged_into_id}")
        if d.call_count > 1:
            items.append(f"calls: {d.call_count}")
        if not d.inside_jurisdiction:
            items.append("outside every jurisdiction: routed to the nearest station")
        lis = "".join(f"<li>{html.escape(_xml_text(i))}</li>" for i in items)
        return f"<p>Incident {d.incident_id} summary</p><ul>{lis}</ul>"


def _timeline_html(kind: str, actor: str, note: str) -> str:
    head = f"<b>{html.escape(_xml_text(kind))}</b> ({html.escape(_xml_text(actor))})"
    body = _lines_html(note)
    return f"<p>{head}{': ' + body if body else ''}</p>"


def _text_html(text: str) -> str:
    return f"<p>{_lines_html(text)}</p>"


def _lines_html(text: str) -> str:
    """Plain text as HTML5 inline content: escaped, line breaks as <br>."""
    lines = _xml_text(text).strip().splitlines()
    return "<br>".join(html.escape(line) for line in lines)


def _jcard(name: str, org_unit: str | None, *, kind: str = "org") -> str:
    """A jCard (RFC 7095) as a JSON string."""
    props: list[list[Any]] = [
        ["version", {}, "text", "4.0"],
        ["fn", {}, "text", name],
        ["kind", {}, "text", kind],
    ]
    if kind == "org":
        props.append(["org", {}, "text", [name, org_unit] if org_unit else name])
    elif org_unit:
        props.append(["org", {}, "text", org_unit])
    return json.dumps(["vcard", props], ensure_ascii=False)


def _tel_uri(number: str, agency_id: str) -> str:
    """An RFC 3966 tel: URI (spaces dropped; a local number gets the agency's domain as its
    phone-context when the agency id is a domain name)."""
    compact = re.sub(r"\s+", "", number)
    if not compact.startswith("+") and _DOMAIN.match(agency_id):
        return f"tel:{compact};phone-context={agency_id}"
    return f"tel:{compact}"


def _xml_text(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry removed."""
    return _XML_BAD_CHARS.sub("", text)


def _pidf(*, entity: str, lat: float, lon: float, address: str | None, timestamp: str) -> str:
    """A PIDF-LO document: a WGS84 point and, in its own tuple, the address (civic LOC)."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise InvalidInput("incident location must be finite numbers")
    # PIDF elements are written unprefixed under a literal default namespace declaration
    # (ElementTree's default_namespace option refuses unprefixed attributes).
    presence = ET.Element("presence", {"xmlns": PIDF_NS, "entity": entity})

    def tuple_(tid: str) -> ET.Element:
        t = ET.SubElement(presence, "tuple", {"id": tid})
        status = ET.SubElement(t, "status")
        geopriv = ET.SubElement(status, f"{{{GP_NS}}}geopriv")
        info = ET.SubElement(geopriv, f"{{{GP_NS}}}location-info")
        ET.SubElement(geopriv, f"{{{GP_NS}}}usage-rules")
        ET.SubElement(t, "timestamp").text = timestamp
        return info

    point = ET.SubElement(tuple_("geodetic"), f"{{{GML_NS}}}Point", {"srsName": WGS84})
    ET.SubElement(point, f"{{{GML_NS}}}pos").text = f"{lat!r} {lon!r}"
    if address and address.strip():
        civic = ET.SubElement(tuple_("civic"), f"{{{CA_NS}}}civicAddress")
        ET.SubElement(civic, f"{{{CA_NS}}}LOC").text = _xml_text(address.strip())
    body = ET.tostring(presence, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>' + body


# ================================================================================== import


@dataclass(frozen=True)
class EidoNote:
    """A note of the EIDO, as plain text, for the incident timeline."""

    at: datetime | None
    text: str
    author: str | None


@dataclass(frozen=True)
class EidoImport:
    """What an incoming EIDO gives us: the call to take in, and where it came from."""

    call: CallIn
    source_incident_id: str | None  # the EIDO's $id: the sender's incident tracking id
    source_internal_id: str | None  # incidentComponent.internalIncidentId
    source_agency_id: str | None
    source_agency_name: str | None
    incident_type: str | None  # the APCO / registry incident type as sent
    type_mapped: bool  # False: the type was unknown (or absent) and fell back
    common_priority: int | None  # incidentCommonPriorityNumber (0-10, 10 most urgent)
    notes: tuple[EidoNote, ...] = ()
    warnings: tuple[str, ...] = ()


#: (lat, lon) for an address, or None when it cannot be found.
Geocoder = Callable[[str], tuple[float, float] | None]


def eido_to_call(
    doc: Any,
    *,
    apco_to_category: Mapping[str, str],
    category_to_apco: Mapping[str, str] | None = None,
    fallback_category: str = "other",
    unknown_type: Literal["fallback", "reject"] = "fallback",
    geocode: Geocoder | None = None,
) -> EidoImport:
    """Read an EIDO 1.0 document into a call to take in (source "eido").

    The incident type: the sender's `incidentTypeInternalCode` when it is one of our codes
    (`category_to_apco`) with the same APCO code as the document (so an EIDO we exported
    comes back with its exact type), else the APCO code mapped by `apco_to_category`, else
    `fallback_category` (or InvalidInput with `unknown_type="reject"`). The location: the
    first with coordinates among those the incident references, then CurrentIncident,
    Incident, Initial, Caller, others; with none, `geocode` on a civic address. Raises
    InvalidInput naming the field (`details["field"]`) when something needed is missing or
    wrong."""
    return _Importer(doc).run(
        apco_to_category={k.strip().upper(): v for k, v in apco_to_category.items()},
        category_to_apco={k: v.strip().upper() for k, v in (category_to_apco or {}).items()},
        fallback_category=fallback_category,
        unknown_type=unknown_type,
        geocode=geocode,
    )


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"EIDO {path}: {message}", details={"field": path})


@dataclass
class _Place:
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    by_reference: str | None = None


class _Importer:
    def __init__(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            raise InvalidInput(
                "an EIDO document must be a JSON object", details={"field": "(document)"}
            )
        self.doc: dict[str, Any] = doc
        self.warnings: list[str] = []
        version = doc.get("eidoVersion")
        if version is None:
            raise _bad("eidoVersion", "missing (expected '1.0')")
        if version != EIDO_VERSION:
            raise _bad("eidoVersion", f"unsupported version {version!r} (expected '1.0')")
        self.by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        for name in _ARRAY_COMPONENTS:
            for i, comp in enumerate(self.components(name)):
                cid = comp.get("$id")
                if isinstance(cid, str):
                    self.by_id.setdefault(cid, (f"{name}[{i}]", comp))

    # ------------------------------------------------------------------ access helpers
    def components(self, name: str) -> list[dict[str, Any]]:
        value = self.doc.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
            raise _bad(name, "must be an array of objects")
        return value

    def refs(self, comp: dict[str, Any], key: str, path: str) -> list[tuple[str, str]]:
        """The `$ref` targets of a reference or array of references, with their paths."""
        value = comp.get(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            p = f"{path}.{key}[{i}]" if isinstance(value, list) else f"{path}.{key}"
            if not isinstance(item, dict) or not isinstance(item.get("$ref"), str):
                raise _bad(p, 'must be a reference object {"$ref": "<$id>"}')
            out.append((p, item["$ref"]))
        return out

    def deref(
        self, comp: dict[str, Any], key: str, path: str, kind: str
    ) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for p, target in self.refs(comp, key, path):
            found = self.by_id.get(target)
            if found is None or not found[0].startswith(kind + "["):
                raise _bad(p, f"no {kind} with $id {target!r} in the document")
            out.append(found)
        return out

    # ------------------------------------------------------------------ the call
    def run(
        self,
        *,
        apco_to_category: Mapping[str, str],
        category_to_apco: Mapping[str, str],
        fallback_category: str,
        unknown_type: str,
        geocode: Geocoder | None,
    ) -> EidoImport:
        incident = self.doc.get("incidentComponent")
        if incident is not None and not isinstance(incident, dict):
            raise _bad("incidentComponent", "must be an object")
        calls = self.components("callComponent")
        primary: tuple[str, dict[str, Any]] | None = None
        for i, c in enumerate(calls):
            if c.get("direction", "incoming") == "incoming":
                primary = (f"callComponent[{i}]", c)
                break
        if primary is None and calls:
            primary = ("callComponent[0]", calls[0])

        type_code, category, mapped = self.category(
            incident, apco_to_category, category_to_apco, fallback_category, unknown_type
        )
        lat, lon, address, loc_path = self.location(incident, primary, geocode)
        number, number_path = self.caller_number(primary)
        name = self.caller_name(primary)
        description = ""
        if primary is not None:
            texts = [
                _html_to_text(n.get("notesActionComments"))
                for _, n in self.deref(primary[1], "notesReference", primary[0], "notesComponent")
            ]
            description = "\n\n".join(t for t in texts if t)

        external_id = None
        call_uid = primary[1].get("$id") if primary else self.doc.get("$id")
        if isinstance(call_uid, str) and call_uid.strip():
            call_uid = call_uid.strip()
            external_id = (
                call_uid
                if len(call_uid) <= 128
                else "eido:" + hashlib.sha256(call_uid.encode()).hexdigest()[:40]
            )

        fields: dict[str, Any] = {
            "caller_number": number,
            "caller_name": _clip(name, 128, "caller name", self.warnings),
            "lat": lat,
            "lon": lon,
            "category": category,
            "description": _clip(description, 4000, "description", self.warnings) or "",
            "address": _clip(address, 256, "address", self.warnings),
            "external_id": external_id,
        }
        paths = {
            "caller_number": number_path,
            "caller_name": "personComponent[].ncPersonComponent.name",
            "lat": loc_path,
            "lon": loc_path,
            "category": "incidentComponent.incidentTypeCommonRegistryText",
            "description": "notesComponent[].notesActionComments",
            "address": loc_path,
            "external_id": "callComponent[].$id",
        }
        try:
            call = CallIn(**fields)
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "caller_number"
            raise _bad(paths.get(key, key), f"{key}: {err['msg']}") from None

        source_agency_id, source_agency_name = self.agency()
        internal_id = incident.get("internalIncidentId") if incident else None
        priority = incident.get("incidentCommonPriorityNumber") if incident else None
        doc_id = self.doc.get("$id")
        return EidoImport(
            call=call,
            source_incident_id=doc_id if isinstance(doc_id, str) else None,
            source_internal_id=internal_id if isinstance(internal_id, str) else None,
            source_agency_id=source_agency_id,
            source_agency_name=source_agency_name,
            incident_type=type_code,
            type_mapped=mapped,
            common_priority=priority if isinstance(priority, int) else None,
            notes=tuple(self.notes()),
            warnings=tuple(self.warnings),
        )

    def category(
        self,
        incident: dict[str, Any] | None,
        apco_to_category: Mapping[str, str],
        category_to_apco: Mapping[str, str],
        fallback: str,
        unknown_type: str,
    ) -> tuple[str | None, str, bool]:
        path = "incidentComponent.incidentTypeCommonRegistryText"
        if incident is None:
            if unknown_type == "reject":
                raise _bad("incidentComponent", "missing, so the incident type is unknown")
            self.warnings.append(
                f"no incidentComponent: incident type unknown, filed as {fallback}"
            )
            return None, fallback, False
        code = incident.get("incidentTypeCommonRegistryText")
        if not isinstance(code, str) or not code.strip():
            raise _bad(path, "missing (the APCO incident type code is required)")
        code = code.strip()
        internal = incident.get("incidentTypeInternalCode")
        if isinstance(internal, str) and category_to_apco.get(internal) == code.upper():
            return code, internal, True
        category = apco_to_category.get(code.upper())
        if category is not None:
            return code, category, True
        if unknown_type == "reject":
            raise _bad(
                path, f"unknown incident type {code!r}: no incident type of ours has this APCO code"
            )
        self.warnings.append(f"incident type {code!r} is not one of ours: filed as {fallback}")
        return code, fallback, False

    # ------------------------------------------------------------------ location
    def location(
        self,
        incident: dict[str, Any] | None,
        primary: tuple[str, dict[str, Any]] | None,
        geocode: Geocoder | None,
    ) -> tuple[float, float, str | None, str]:
        all_locs = [
            (f"locationComponent[{i}]", c)
            for i, c in enumerate(self.components("locationComponent"))
        ]
        if not all_locs:
            raise _bad("locationComponent", "missing: the EIDO carries no location")
        ordered: list[tuple[str, dict[str, Any]]] = []
        if incident is not None:
            ordered += self.deref(
                incident, "locationReference", "incidentComponent", "locationComponent"
            )
        if primary is not None:
            ordered += self.deref(primary[1], "locationReference", primary[0], "locationComponent")
        rest = sorted(
            all_locs,
            key=lambda pc: _LOCATION_RANK.get(
                str(pc[1].get("locationTypeDescriptionRegistryText")), len(_LOCATION_RANK)
            ),
        )
        seen: set[str] = set()
        candidates = []
        for path, comp in ordered + rest:
            if path not in seen:
                seen.add(path)
                candidates.append((path, comp, _parse_location(comp, path)))

        address = next((pl.address for _, _, pl in candidates if pl.address), None)
        for path, _, place in candidates:
            if place.lat is not None and place.lon is not None:
                return place.lat, place.lon, place.address or address, path
        if address and geocode is not None:
            found = geocode(address)
            if found is not None:
                lat, lon = found
                self.warnings.append(f"location geocoded from the address {address!r}")
                path = next(p for p, _, pl in candidates if pl.address == address)
                return lat, lon, address, path
        why = []
        for path, _, place in candidates:
            if place.by_reference:
                why.append(f"{path} is by reference only ({place.by_reference}), not fetched")
            elif place.address:
                why.append(f"{path} has an address only ({place.address})")
        detail = "; ".join(why) if why else "no locationByValue with a position"
        hint = "" if geocode is None or not address else " and the address was not found"
        raise _bad("locationComponent", f"no location with coordinates ({detail}){hint}")

    # ------------------------------------------------------------------ caller
    def caller_persons(
        self, primary: tuple[str, dict[str, Any]] | None
    ) -> list[tuple[str, dict[str, Any]]]:
        persons = []
        if primary is not None:
            persons += self.deref(primary[1], "personReference", primary[0], "personComponent")
        for i, p in enumerate(self.components("personComponent")):
            roles = p.get("personIncidentRoleRegistryText")
            if isinstance(roles, list) and "Caller" in roles:
                persons.append((f"personComponent[{i}]", p))
        return persons

    def caller_number(self, primary: tuple[str, dict[str, Any]] | None) -> tuple[str, str]:
        callbacks: list[tuple[str, dict[str, Any]]] = []
        if primary is not None:
            callbacks += self.deref(
                primary[1], "callBackReference", primary[0], "callbackComponent"
            )
        for path, person in self.caller_persons(primary):
            callbacks += self.deref(person, "callBackReference", path, "callbackComponent")
        callbacks += [
            (f"callbackComponent[{i}]", c)
            for i, c in enumerate(self.components("callbackComponent"))
        ]
        tried = []
        for path, cb in callbacks:
            uris = cb.get("callBackInformationUri")
            if uris is not None and not (
                isinstance(uris, list) and all(isinstance(u, str) for u in uris)
            ):
                raise _bad(f"{path}.callBackInformationUri", "must be an array of strings")
            updated = cb.get("updatedCbn")
            extra = [updated.get("updatedCbnIdentifierUri")] if isinstance(updated, dict) else []
            for uri in sorted(
                (uris or []) + [u for u in extra if isinstance(u, str)],
                key=lambda u: not u.lower().startswith("tel:"),
            ):
                number = _number_from_uri(uri)
                if number is not None:
                    return number, f"{path}.callBackInformationUri"
                tried.append(uri)
        if tried:
            raise _bad(
                "callbackComponent[].callBackInformationUri",
                f"no usable phone number in {', '.join(map(repr, tried[:5]))}",
            )
        raise _bad(
            "callbackComponent", "missing: no caller number (a tel: URI in callBackInformationUri)"
        )

    def caller_name(self, primary: tuple[str, dict[str, Any]] | None) -> str | None:
        for _, person in self.caller_persons(primary):
            name = _niem_name(person.get("ncPersonComponent"))
            if name:
                return name
        return None

    # ------------------------------------------------------------------ the rest
    def agency(self) -> tuple[str | None, str | None]:
        agencies = self.components("agencyComponent")
        chosen = next((a for a in agencies if a.get("incidentOwningAgencyIndicator") is True), None)
        updated_by = self.doc.get("updatedByAgencyReference")
        ref = updated_by.get("$ref") if isinstance(updated_by, dict) else None
        if chosen is None and isinstance(ref, str):
            chosen = next((a for a in agencies if a.get("$id") == ref), None)
        if chosen is None and agencies:
            chosen = agencies[0]
        agency_id = chosen.get("$id") if chosen else ref
        name = _jcard_fn(chosen.get("agencyJcard")) if chosen else None
        return (agency_id if isinstance(agency_id, str) else None), name

    def notes(self) -> Iterable[EidoNote]:
        for note in self.components("notesComponent"):
            text = _html_to_text(note.get("notesActionComments"))
            if not text:
                continue
            author = None
            for key in ("agentReference", "updatedByAgentReference"):
                ref = note.get(key)
                if isinstance(ref, dict) and isinstance(ref.get("$ref"), str):
                    author = ref["$ref"]
                    break
            yield EidoNote(
                at=_parse_time(note.get("lastUpdateTimeStamp")), text=text, author=author
            )


def _clip(text: str | None, limit: int, what: str, warnings: list[str]) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if len(text) > limit:
        warnings.append(f"{what} cut to {limit} characters")
        return text[: limit - 1].rstrip() + "…"
    return text or None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _html_to_text(value: Any) -> str:
    """The text of an HTML5 note: line breaks kept, tags dropped, entities decoded."""
    if not isinstance(value, str):
        return ""
    text = re.sub(r"(?i)<br\s*/?>|</p\s*>|</li\s*>|</div\s*>", "\n", value)
    text = re.sub(r"(?i)<li\b[^>]*>", "- ", text)
    text = html.unescape(re.sub(r"<[^>]*>", "", text))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _number_from_uri(uri: str) -> str | None:
    """The phone number of a tel: URI, or of a sip: URI whose user part is a number."""
    uri = uri.strip()
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme == "tel":
        number = rest.split(";", 1)[0]
    elif scheme in ("sip", "sips"):
        number = rest.split("@", 1)[0].split(";", 1)[0]
    else:
        return None
    number = number.replace(".", "").strip()
    return number if _PHONE.match(number) and any(c.isdigit() for c in number) else None


def _niem_name(person: Any) -> str | None:
    if not isinstance(person, dict):
        return None
    names = person.get("name")
    if not isinstance(names, list):
        return None

    def values(entry: dict[str, Any], key: str) -> list[str]:
        items = entry.get(key)
        if not isinstance(items, list):
            return []
        return [
            str(i["value"]).strip()
            for i in items
            if isinstance(i, dict) and isinstance(i.get("value"), str) and i["value"].strip()
        ]

    for entry in names:
        if not isinstance(entry, dict):
            continue
        full = values(entry, "personFullName")
        if full:
            return full[0]
        parts = (
            values(entry, "personGivenName")
            + values(entry, "personMiddleName")
            + values(entry, "personSurName")
        )
        if parts:
            return " ".join(parts)
    return None


def _jcard_fn(value: Any) -> str | None:
    """The formatted name (fn) of a jCard (RFC 7095) or of a plain vCard text."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        card = json.loads(value)
    except ValueError:
        m = re.search(r"(?im)^FN[^:]*:(.+)$", value)
        return m.group(1).strip() if m else None
    if isinstance(card, list) and len(card) == 2 and isinstance(card[1], list):
        for prop in card[1]:
            if (
                isinstance(prop, list)
                and len(prop) >= 4
                and prop[0] == "fn"
                and isinstance(prop[3], str)
            ):
                return prop[3]
    return None


# ------------------------------------------------------------------ PIDF-LO reading

_POINT_SHAPES = frozenset({"Point", "Circle", "Ellipse", "ArcBand", "Sphere", "Ellipsoid"})
_AREA_SHAPES = frozenset({"Polygon", "Prism"})
_CIVIC_ORDER = ("NAM", "STREET", "LOC", "LMK", "A6", "A5", "A4", "A3", "A2", "A1", "PC", "country")
_STREET_PARTS = ("HNO", "HNS", "PRM", "PRD", "RD", "STS", "POD", "POM")
_GEO_URI = re.compile(r"^geo:\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)(,-?[0-9.]+)?(;.*)?$", re.I)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_location(comp: dict[str, Any], path: str) -> _Place:
    place = _Place()
    by_ref = comp.get("locationByReferenceUrl")
    if isinstance(by_ref, str) and by_ref.strip():
        place.by_reference = by_ref.strip()
    value = comp.get("locationByValue")
    vpath = f"{path}.locationByValue"
    if value is not None and not isinstance(value, str):
        raise _bad(vpath, "must be a string (a PIDF-LO XML document)")
    if isinstance(value, str) and value.strip():
        m = _GEO_URI.match(value.strip())
        if m:
            place.lat, place.lon = _checked(float(m.group(1)), float(m.group(2)), vpath)
        else:
            _parse_pidf(value, vpath, place)
    return place


def _parse_pidf(text: str, path: str, place: _Place) -> None:
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.I):
        raise _bad(path, "DOCTYPE / ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as e:
        raise _bad(path, f"not a well-formed PIDF-LO XML document ({e})") from None
    for info in root.iter():
        if _local(info.tag) != "location-info":
            continue
        for shape in info:
            name = _local(shape.tag)
            if name in _POINT_SHAPES or name in _AREA_SHAPES:
                if place.lat is None:
                    place.lat, place.lon = _shape_position(shape, name, path)
            elif name == "civicAddress" and place.address is None:
                place.address = _civic_text(shape)


def _shape_position(shape: ET.Element, name: str, path: str) -> tuple[float, float]:
    srs = shape.get("srsName", WGS84)
    if not (srs.endswith(":4326") or srs.endswith(":4979")):
        raise _bad(path, f"gml:{name} in {srs!r}: only WGS84 (EPSG 4326/4979) is read")
    dim = 3 if srs.endswith(":4979") else 2
    points: list[tuple[float, float]] = []
    for el in shape.iter():
        tag = _local(el.tag)
        if tag not in ("pos", "posList") or not el.text:
            continue
        try:
            nums = [float(x) for x in el.text.split()]
        except ValueError:
            raise _bad(path, f"gml:{tag} {el.text.strip()!r} is not numbers") from None
        step = dim if tag == "posList" else len(nums)
        if step < 2 or len(nums) % step:
            raise _bad(path, f"gml:{tag} {el.text.strip()!r} is not latitude longitude")
        points += [(nums[i], nums[i + 1]) for i in range(0, len(nums), step)]
        if name in _POINT_SHAPES:
            break
    if not points:
        raise _bad(path, f"gml:{name} has no gml:pos")
    if name in _AREA_SHAPES and len(points) > 1 and points[0] == points[-1]:
        points = points[:-1]  # a closed ring repeats its first vertex
    lat = sum(p[0] for p in points) / len(points)
    lon = sum(p[1] for p in points) / len(points)
    return _checked(lat, lon, path)


def _checked(lat: float, lon: float, path: str) -> tuple[float, float]:
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise _bad(path, f"latitude {lat} out of range (-90..90)")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise _bad(path, f"longitude {lon} out of range (-180..180)")
    return lat, lon


def _civic_text(civic: ET.Element) -> str | None:
    parts: dict[str, str] = {}
    for el in civic:
        key = _local(el.tag)
        if el.text and el.text.strip() and key not in parts:
            parts[key] = " ".join(el.text.split())
    street = " ".join(parts[k] for k in _STREET_PARTS if k in parts)
    if street:
        parts["STREET"] = street
    out = [parts[k] for k in _CIVIC_ORDER if k in parts]
    return ", ".join(out) or None
