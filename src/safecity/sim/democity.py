"""Deterministic demo province around Peshawar (Khyber Pakhtunkhwa).

Pure data, no database and no web: :func:`build_demo_city` returns frozen dataclasses
that the loader feeds through the services. Everything derives from the ``seed``
(same seed -> identical output, geometries included, byte for byte in WKB).

Geography
---------
* a seeded, jittered province outline of roughly 85 km x 55 km centred on the
  Peshawar valley (71.80E 34.05N);
* 11 tehsils: the Voronoi cells of real tehsil seats clipped to that outline; each
  district (Peshawar, Charsadda, Nowshera) is the union of its tehsils;
* 55 police stations placed near their real positions; a station's jurisdiction is
  the Voronoi cell of its building among the stations of the same tehsil, clipped to
  the tehsil, so jurisdictions never overlap and exactly cover each tehsil.

Neighbouring Voronoi cells share their vertices exactly and are clipped by the same
parent, so siblings never overlap and their union is their parent (to ~1e-14 of its
area). The province outline's vertices lie on a :data:`GRID` of about 1 cm.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon, box

__all__ = [
    "AREA_LEVELS",
    "CALL_CATEGORIES",
    "CAMERA_KINDS",
    "GRID",
    "OFFICER_RANKS",
    "ROLES",
    "SCOPE_LEVELS",
    "SITE_KINDS",
    "UNIT_KINDS",
    "Area",
    "Camera",
    "DemoCity",
    "DemoUser",
    "Officer",
    "Site",
    "Unit",
    "build_demo_city",
]

GRID = 1e-7
"""Precision grid (degrees) of the province outline: about 1 cm on the ground."""

AREA_LEVELS = ("province", "district", "tehsil", "station")
SITE_KINDS = (
    "chowk",
    "market",
    "embassy",
    "toll_plaza",
    "terminal",
    "hospital",
    "school",
    "bank",
    "university",
    "government",
)
CAMERA_KINDS = ("fixed", "ptz", "anpr", "face")
UNIT_KINDS = ("patrol_car", "motorcycle", "foot")
OFFICER_RANKS = ("Constable", "Head Constable", "ASI", "SI", "Inspector", "DSP", "SP")
ROLES = (
    "admin",
    "call_taker",
    "dispatcher",
    "sho",
    "sdpo",
    "district_sp",
    "analyst",
    "field_officer",
)
SCOPE_LEVELS = ("all", "district", "tehsil", "station")

CALL_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("robbery", "Robbery / dacoity"),
    ("snatching", "Snatching (mobile phone, purse)"),
    ("vehicle_theft", "Vehicle / motorcycle theft"),
    ("terrorism", "Terrorism / blast / firing on police"),
    ("kidnapping", "Kidnapping / abduction"),
    ("murder", "Murder / firing with casualty"),
    ("assault", "Assault / fight"),
    ("traffic_accident", "Traffic accident"),
    ("harassment", "Harassment"),
    ("fire", "Fire"),
    ("suspicious", "Suspicious person / vehicle / object"),
    ("domestic", "Domestic dispute / violence"),
    ("prank", "Prank / non-genuine call"),
    ("other", "Other"),
)

CAMERA_TOTAL = 700
UNIT_TOTAL = 200
SITE_TOTAL = 125


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Area:
    """An administrative or police area. ``geometry`` is a valid shapely Polygon or
    MultiPolygon in lon/lat (EPSG:4326); ``location`` is the seat (province, district,
    tehsil) or the police station building (station), always inside ``geometry``."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geometry: Polygon | MultiPolygon
    location: Point

    @property
    def lon(self) -> float:
        return float(self.location.x)

    @property
    def lat(self) -> float:
        return float(self.location.y)


@dataclass(frozen=True)
class Site:
    """A named place a Safe City centre watches (chowk, market, consulate gate...)."""

    code: str
    name: str
    kind: str
    lon: float
    lat: float
    station_code: str


@dataclass(frozen=True)
class Camera:
    """A CCTV camera at a site. ``stream_url`` is a placeholder, never connected."""

    code: str
    name: str
    site_code: str
    kind: str
    heading_deg: float
    stream_url: str
    lon: float
    lat: float


@dataclass(frozen=True)
class Unit:
    """A patrol unit and its starting position (inside its station's jurisdiction).
    ``squad`` is descriptive: "Rapid Response Force", "Muhafiz Squad", "Station Patrol",
    "Beat Patrol"."""

    code: str
    callsign: str
    kind: str
    station_code: str
    lon: float
    lat: float
    squad: str


@dataclass(frozen=True)
class Officer:
    """A police officer. ``post`` is "SP", "SDPO", "SHO" or "Unit"; unit crews carry
    their ``unit_code``. Station officers also carry their tehsil and district."""

    code: str
    name: str
    rank: str
    station_code: str | None
    tehsil_code: str | None
    district_code: str | None
    post: str
    unit_code: str | None = None

    @property
    def display_name(self) -> str:
        return f"{self.rank} {self.name}"


@dataclass(frozen=True)
class DemoUser:
    """A demo login. ``scope_code`` is None for scope "all", else the area code."""

    username: str
    full_name: str
    role: str
    scope_level: str
    scope_code: str | None
    officer_code: str | None = None
    unit_code: str | None = None


@dataclass(frozen=True)
class DemoCity:
    seed: int
    province: Area
    districts: tuple[Area, ...]
    tehsils: tuple[Area, ...]
    stations: tuple[Area, ...]
    sites: tuple[Site, ...]
    cameras: tuple[Camera, ...]
    units: tuple[Unit, ...]
    officers: tuple[Officer, ...]
    users: tuple[DemoUser, ...]
    call_categories: tuple[tuple[str, str], ...]

    def areas(self) -> tuple[Area, ...]:
        """All areas, parents before children (province, districts, tehsils, stations)."""
        return (self.province, *self.districts, *self.tehsils, *self.stations)


# --------------------------------------------------------------------------- source data

# Province outline: a superellipse around the Peshawar valley, jittered by the seed.
_CENTER = (71.80, 34.05)
_SEMI_AXES = (0.45, 0.26)
_SUPERELLIPSE_P = 3.5
_OUTLINE_VERTICES = 120
_HARMONICS = ((2, 0.020), (3, 0.015), (4, 0.012), (5, 0.008), (7, 0.006))
_VERTEX_NOISE = 0.006
_LON_SCALE = math.cos(math.radians(_CENTER[1]))  # degrees of lon -> "equal" degrees

_PROVINCE = ("KP", "Khyber Pakhtunkhwa (Demo Province)")

# district key -> (code, name, callsign prefix, SP username)
_DISTRICTS: tuple[tuple[str, str, str, str], ...] = (
    ("KP-PSH", "Peshawar", "PSR", "sp.peshawar"),
    ("KP-CSD", "Charsadda", "CSD", "sp.charsadda"),
    ("KP-NSR", "Nowshera", "NSR", "sp.nowshera"),
)

# Tehsils holding the district headquarters (bigger stations, more sites).
_SEAT_TEHSILS = ("Peshawar City", "Charsadda", "Nowshera")

# Station: (name, lon, lat, localities used for the names of smaller sites).
_StationSrc = tuple[str, float, float, tuple[str, ...]]
# Tehsil: (district code, tehsil name, Voronoi generator or None for the seat, stations);
# the first station is the tehsil seat (headquarters).
_TehsilSrc = tuple[str, str, tuple[float, float] | None, tuple[_StationSrc, ...]]

_TEHSILS: tuple[_TehsilSrc, ...] = (
    (
        "KP-PSH",
        "Peshawar City",
        (71.5350, 34.0050),
        (
            ("PS Kotwali", 71.5700, 34.0095, ("Qissa Khwani", "Kohati Gate")),
            ("PS Khan Raziq Shaheed", 71.5650, 34.0060, ("Karimpura", "Andar Shehr")),
            ("PS Hashtnagri", 71.5790, 34.0110, ("Hashtnagri", "Ganj Gate")),
            ("PS Lahori", 71.5760, 34.0060, ("Lahori Gate", "Asamai Gate")),
            ("PS Gulbahar", 71.5870, 34.0150, ("Gulbahar", "Sikandarpura")),
            ("PS Faqirabad", 71.5930, 34.0250, ("Faqirabad", "Sheikhabad")),
            ("PS Yakatoot", 71.5650, 34.0170, ("Yakatoot", "Kakshal")),
            ("PS East Cantt", 71.5480, 34.0030, ("Saddar", "Peshawar Cantt")),
            ("PS West Cantt", 71.5300, 34.0010, ("Khyber Road", "Mall Road")),
            ("PS Gulberg", 71.5600, 33.9950, ("Gulberg", "Nothia")),
            ("PS Tehkal", 71.5130, 34.0100, ("Tehkal", "Palosi")),
            ("PS University Town", 71.4950, 34.0070, ("University Town", "Rahatabad")),
            ("PS Hayatabad", 71.4500, 33.9900, ("Hayatabad Phase-1", "Hayatabad Phase-5")),
            ("PS Town", 71.5220, 33.9960, ("Defence Colony", "Abdara Road")),
            ("PS Pishtakhara", 71.5350, 33.9750, ("Pishtakhara", "Shaheen Muslim Town")),
            ("PS Chamkani", 71.6300, 34.0050, ("Chamkani", "Pajagi Road")),
            ("PS Agha Mir Jani Shah", 71.6050, 34.0000, ("Agha Mir Jani Shah", "Nishtarabad")),
            ("PS Pahari Pura", 71.6030, 34.0180, ("Pahari Pura", "Wazir Bagh")),
            ("PS Inqilab", 71.5500, 33.9700, ("Inqilab Road", "Ramdas")),
            ("PS Rahman Baba", 71.5550, 34.0300, ("Rahman Baba", "Wazir Colony")),
            ("PS Academy Town", 71.4700, 33.9950, ("Academy Town", "Board")),
            ("PS Phandu", 71.6150, 34.0300, ("Phandu", "Sufaid Dheri")),
        ),
    ),
    (
        "KP-PSH",
        "Shah Alam",
        None,
        (
            ("PS Naguman", 71.5950, 34.1100, ("Naguman", "Shah Alam")),
            ("PS Daudzai", 71.6550, 34.0850, ("Daudzai", "Mian Gujar")),
            ("PS Khazana", 71.6150, 34.0650, ("Khazana", "Lala Kalay")),
        ),
    ),
    (
        "KP-PSH",
        "Mathra",
        (71.4500, 34.0900),
        (
            ("PS Mathra", 71.4700, 34.1150, ("Mathra", "Kaga Wala")),
            ("PS Regi", 71.4200, 34.0300, ("Regi", "Regi Model Town")),
            ("PS Warsak", 71.4200, 34.1400, ("Warsak", "Budhni")),
        ),
    ),
    (
        "KP-PSH",
        "Badaber",
        (71.5450, 33.9050),
        (
            ("PS Badaber", 71.5350, 33.9200, ("Badaber", "Mashogagar")),
            ("PS Sarband", 71.5000, 33.9350, ("Sarband", "Bara Road")),
            ("PS Bazid Khel", 71.5800, 33.9300, ("Bazid Khel", "Suleman Khel")),
        ),
    ),
    (
        "KP-PSH",
        "Hassan Khel",
        None,
        (
            ("PS Hassan Khel", 71.5800, 33.8500, ("Hassan Khel", "Janakor")),
            ("PS Mattani", 71.5550, 33.8600, ("Mattani", "Adezai")),
        ),
    ),
    (
        "KP-CSD",
        "Charsadda",
        None,
        (
            ("PS Charsadda City", 71.7310, 34.1480, ("Charsadda", "Farooq-e-Azam")),
            ("PS Prang", 71.7550, 34.1700, ("Prang", "Dheri Zardad")),
            ("PS Umarzai", 71.8000, 34.2200, ("Umarzai", "Turangzai")),
            ("PS Utmanzai", 71.7600, 34.1950, ("Utmanzai", "Sherpao")),
            ("PS Rajjar", 71.7000, 34.1200, ("Rajjar", "Sardaryab")),
        ),
    ),
    (
        "KP-CSD",
        "Tangi",
        None,
        (
            ("PS Tangi", 71.6550, 34.2650, ("Tangi", "Abazai")),
            ("PS Harichand", 71.6200, 34.2350, ("Harichand", "Dargai")),
            ("PS Mandani", 71.7000, 34.2700, ("Mandani", "Barazai")),
        ),
    ),
    (
        "KP-CSD",
        "Shabqadar",
        None,
        (
            ("PS Shabqadar", 71.5550, 34.2150, ("Shabqadar", "Shabqadar Fort")),
            ("PS Michni", 71.5100, 34.1800, ("Michni", "Sro Kamar")),
        ),
    ),
    (
        "KP-NSR",
        "Nowshera",
        None,
        (
            ("PS Nowshera Kalan", 71.9650, 34.0150, ("Nowshera Kalan", "Nowshera City")),
            ("PS Nowshera Cantt", 71.9850, 33.9980, ("Nowshera Cantt", "Ziarat Kaka Sahib")),
            ("PS Aman Garh", 71.9300, 34.0250, ("Aman Garh", "Wapda Colony")),
            ("PS Kheshgi", 71.8850, 34.0350, ("Kheshgi", "Kheshgi Payan")),
            ("PS Risalpur", 71.9900, 34.0650, ("Risalpur", "Mohib Banda")),
            ("PS Manki Sharif", 72.0200, 34.1000, ("Manki Sharif", "Dag Bahsud")),
        ),
    ),
    (
        "KP-NSR",
        "Pabbi",
        None,
        (
            ("PS Pabbi", 71.7950, 33.9950, ("Pabbi", "Misri Banda")),
            ("PS Taru Jabba", 71.7050, 34.0000, ("Taru Jabba", "Akbarpura")),
            ("PS Cherat", 71.8900, 33.8450, ("Cherat", "Chapri")),
            ("PS Azakhel", 71.8400, 33.9750, ("Azakhel", "Mian Essa")),
        ),
    ),
    (
        "KP-NSR",
        "Jehangira",
        None,
        (
            ("PS Jehangira", 72.1700, 34.0300, ("Jehangira", "Dheri Ishaq")),
            ("PS Akora Khattak", 72.1200, 34.0000, ("Akora Khattak", "Jalozai")),
            ("PS Khairabad", 72.1800, 33.9550, ("Khairabad", "Shaidu")),
        ),
    ),
)

# Curated watched sites: (name, kind, lon, lat).
_SITES: tuple[tuple[str, str, float, float], ...] = (
    # Peshawar: walled city and GT Road
    ("Firdous Chowk", "chowk", 71.5625, 34.0085),
    ("Hashtnagri Chowk", "chowk", 71.5800, 34.0105),
    ("Khyber Bazaar", "market", 71.5665, 34.0066),
    ("Qissa Khwani Bazaar", "market", 71.5705, 34.0081),
    ("Chowk Yadgar", "chowk", 71.5737, 34.0091),
    ("Namak Mandi", "market", 71.5775, 34.0074),
    ("Shoba Bazaar", "market", 71.5768, 34.0042),
    ("Lady Reading Hospital", "hospital", 71.5716, 34.0126),
    ("Government High School No. 1", "school", 71.5741, 34.0052),
    ("HBL Khyber Bazaar Branch", "bank", 71.5672, 34.0058),
    ("Gulbahar Chowk", "chowk", 71.5862, 34.0141),
    ("Faqirabad Chowk", "chowk", 71.5921, 34.0242),
    ("Dalazak Road", "chowk", 71.5922, 34.0342),
    ("Haji Camp Bus Terminal", "terminal", 71.5951, 34.0201),
    ("Daewoo Terminal GT Road", "terminal", 71.6003, 34.0139),
    ("Chamkani Mor", "chowk", 71.6322, 34.0061),
    ("Ring Road / Charsadda Road", "chowk", 71.5851, 34.0441),
    ("Motorway Toll Plaza M-1", "toll_plaza", 71.6131, 34.0522),
    ("Sunehri Masjid Road", "chowk", 71.5502, 34.0102),
    # Peshawar: Cantonment
    ("Saddar Road", "chowk", 71.5421, 34.0012),
    ("Saddar Bazaar", "market", 71.5443, 33.9994),
    ("Peshawar Cantt Railway Station", "terminal", 71.5502, 34.0051),
    ("Kohat Adda", "terminal", 71.5721, 33.9961),
    ("Civil Secretariat", "government", 71.5361, 34.0061),
    ("Governor House", "government", 71.5301, 34.0041),
    ("Provincial Assembly", "government", 71.5401, 34.0072),
    ("Peshawar High Court", "government", 71.5292, 34.0081),
    ("Central Police Office", "government", 71.5331, 34.0022),
    ("Edwardes College", "school", 71.5472, 34.0011),
    ("State Bank of Pakistan Peshawar", "bank", 71.5452, 34.0041),
    ("Bank of Khyber Head Office", "bank", 71.5352, 33.9999),
    ("Combined Military Hospital Peshawar", "hospital", 71.5372, 34.0049),
    ("Bacha Khan International Airport Gate", "terminal", 71.5181, 33.9962),
    # Peshawar: University Road, consulates, Hayatabad
    ("US Consulate Gate", "embassy", 71.5201, 34.0031),
    ("Afghan Consulate Gate", "embassy", 71.5052, 34.0091),
    ("Iranian Consulate Gate", "embassy", 71.5011, 34.0052),
    ("Tehkal Chowk", "chowk", 71.5132, 34.0122),
    ("University Road / Gul Haji Plaza", "market", 71.4931, 34.0061),
    ("University of Peshawar Main Gate", "university", 71.4852, 34.0021),
    ("Islamia College", "university", 71.4962, 34.0011),
    ("UET Peshawar", "university", 71.4822, 34.0091),
    ("Agricultural University", "university", 71.4791, 34.0122),
    ("Khyber Teaching Hospital", "hospital", 71.4871, 34.0031),
    ("Board Bazaar", "market", 71.4841, 34.0111),
    ("Meezan Bank University Road Branch", "bank", 71.5003, 34.0072),
    ("Jamrud Chowk", "chowk", 71.4622, 33.9962),
    ("Hayatabad Medical Complex", "hospital", 71.4451, 33.9841),
    ("Khyber Medical University", "university", 71.4551, 33.9791),
    ("Karkhano Market", "market", 71.4382, 33.9761),
    ("Hayatabad Toll Plaza", "toll_plaza", 71.4302, 33.9801),
    ("Hayatabad Phase-6 Chowk", "chowk", 71.4402, 33.9702),
    ("Warsak Road / Ring Road", "chowk", 71.5152, 34.0352),
    # Peshawar: south
    ("Pishtakhara Chowk", "chowk", 71.5332, 33.9762),
    ("Ring Road / Kohat Road", "chowk", 71.5642, 33.9702),
    ("Bara Road / Ring Road", "chowk", 71.5102, 33.9652),
    ("Kohat Road Toll Plaza", "toll_plaza", 71.5502, 33.9302),
    ("Badaber Bazaar", "market", 71.5362, 33.9232),
    ("Mattani Bazaar", "market", 71.5522, 33.8772),
    # Peshawar: north
    ("Naguman Bridge", "chowk", 71.5902, 34.1052),
    ("Daudzai Bazaar", "market", 71.6502, 34.0862),
    ("Mathra Bazaar", "market", 71.4702, 34.1122),
    # Charsadda
    ("Farooq-e-Azam Chowk", "chowk", 71.7342, 34.1472),
    ("Charsadda Bazaar", "market", 71.7302, 34.1502),
    ("DHQ Hospital Charsadda", "hospital", 71.7402, 34.1442),
    ("Bacha Khan University", "university", 71.7152, 34.1622),
    ("Charsadda General Bus Stand", "terminal", 71.7252, 34.1432),
    ("Sardaryab Bridge", "chowk", 71.6702, 34.1102),
    ("Tangi Bazaar", "market", 71.6552, 34.2622),
    ("Shabqadar Bazaar", "market", 71.5562, 34.2132),
    ("Shabqadar Fort Gate", "government", 71.5602, 34.2182),
    # Nowshera
    ("GT Road / Nowshera Chowk", "chowk", 71.9752, 34.0082),
    ("Nowshera Cantt Bazaar", "market", 71.9862, 34.0012),
    ("CMH Nowshera", "hospital", 71.9902, 33.9982),
    ("Nowshera Railway Station", "terminal", 71.9782, 34.0042),
    ("Rashakai Interchange Toll Plaza M-1", "toll_plaza", 72.0302, 34.0952),
    ("Risalpur Cantt Gate", "government", 71.9902, 34.0702),
    ("Kheshgi Bridge", "chowk", 71.8852, 34.0382),
    ("Pabbi Bazaar", "market", 71.7952, 33.9982),
    ("Taru Jabba Toll Plaza (GT Road)", "toll_plaza", 71.7202, 33.9982),
    ("Jehangira Bazaar", "market", 72.1702, 34.0332),
    ("Akora Khattak Chowk", "chowk", 72.1202, 34.0022),
    ("Khairabad Toll Plaza (N-5)", "toll_plaza", 72.1752, 33.9592),
    ("Attock Bridge approach", "chowk", 72.1852, 33.9502),
)

# Templates for the smaller, generated sites: kind -> (weight, name templates).
_FILLER_KINDS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("chowk", 30, ("{loc} Chowk", "{loc} Main Chowk", "{loc} Adda")),
    ("market", 20, ("{loc} Bazaar", "{loc} Market", "{loc} Sabzi Mandi")),
    (
        "bank",
        12,
        (
            "Bank of Khyber {loc} Branch",
            "National Bank {loc} Branch",
            "HBL {loc} Branch",
            "Meezan Bank {loc} Branch",
        ),
    ),
    (
        "school",
        12,
        ("Govt. High School {loc}", "Govt. Girls High School {loc}", "Govt. College {loc}"),
    ),
    ("hospital", 8, ("{loc} Basic Health Unit", "{loc} Rural Health Centre", "{loc} Hospital")),
    ("government", 8, ("NADRA Centre {loc}", "{loc} Post Office", "{loc} Union Council Office")),
    ("terminal", 5, ("{loc} Bus Adda", "{loc} Wagon Stand")),
)

_MAIN_ROAD_WORDS = ("Road", "GT", "Bridge", "Mor", "Ring", "Interchange", "Attock", "Adda")

_GIVEN_NAMES = (
    "Gul Rehman",
    "Sher Ali",
    "Zar Wali",
    "Fazal Haq",
    "Noor Muhammad",
    "Bakht Zada",
    "Ihsanullah",
    "Amjad Ali",
    "Tariq Mehmood",
    "Imran",
    "Zahid Ullah",
    "Sajjad Ahmad",
    "Javed Iqbal",
    "Shahid",
    "Waqar Ahmad",
    "Asad",
    "Khalid",
    "Rashid",
    "Naveed",
    "Farhan",
    "Irfan Ullah",
    "Bilal",
    "Usman Ghani",
    "Hamid",
    "Saeed Ullah",
    "Wajid Ali",
    "Qaiser",
    "Jehanzeb",
    "Zubair",
    "Sohail",
    "Iftikhar",
    "Mushtaq",
    "Akbar",
    "Aurangzeb",
    "Yasir",
    "Fawad",
    "Adnan",
    "Haroon",
    "Saleem",
    "Rahim Shah",
    "Ayaz",
    "Sanaullah",
    "Inamullah",
    "Hidayatullah",
    "Ziaullah",
    "Arshad",
    "Mir Alam",
    "Taj Muhammad",
    "Sardar Ali",
    "Umar Farooq",
)
_GIVEN_NAMES_F = ("Ayesha", "Rukhsana", "Shazia", "Nazia", "Sadia", "Farzana", "Nargis", "Uzma")
_FAMILY_NAMES = (
    "Khan",
    "Afridi",
    "Khattak",
    "Yousafzai",
    "Mohmand",
    "Shinwari",
    "Orakzai",
    "Bangash",
    "Durrani",
    "Marwat",
    "Tareen",
    "Kakar",
    "Jadoon",
    "Swati",
    "Qureshi",
    "Awan",
    "Gandapur",
    "Khalil",
    "Daudzai",
    "Achakzai",
    "Babar",
    "Mughal",
    "Hussain",
    "Shah",
    "Gilani",
    "Bukhari",
    "Utmankhel",
    "Kundi",
)


# --------------------------------------------------------------------------- geometry


def _slug(text: str, sep: str = "_") -> str:
    return re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep)


def _polygonal(geom: Any, what: str) -> Polygon | MultiPolygon:
    """The polygonal part of an overlay result, as a valid Polygon or MultiPolygon."""
    parts: list[Any] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon" and not part.is_empty:
            parts.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            parts.extend(
                p for p in shapely.get_parts(part) if p.geom_type == "Polygon" and not p.is_empty
            )
    if not parts:
        raise RuntimeError(f"demo city: {what} is empty")
    result: Any = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    if not result.is_valid:
        result = _polygonal(shapely.make_valid(result), what)
    return result


def _province_outline(rng: random.Random) -> Polygon:
    """A seeded, jittered superellipse around the Peshawar valley."""
    harmonics = [
        (k, rng.uniform(0.4, 1.0) * amp, rng.uniform(0.0, math.tau)) for k, amp in _HARMONICS
    ]
    cx, cy = _CENTER
    a, b = _SEMI_AXES
    expo = 2.0 / _SUPERELLIPSE_P
    coords: list[tuple[float, float]] = []
    for i in range(_OUTLINE_VERTICES):
        t = math.tau * i / _OUTLINE_VERTICES
        c, s = math.cos(t), math.sin(t)
        factor = 1.0 + sum(amp * math.sin(k * t + ph) for k, amp, ph in harmonics)
        factor += rng.uniform(-_VERTEX_NOISE, _VERTEX_NOISE)
        x = a * math.copysign(abs(c) ** expo, c) * factor
        y = b * math.copysign(abs(s) ** expo, s) * factor
        coords.append((round(cx + x, 6), round(cy + y, 6)))
    outline = shapely.set_precision(Polygon(coords), GRID)
    return _polygonal(outline, "province outline")


def _voronoi_partition(
    points: Sequence[tuple[float, float]], parent: Polygon | MultiPolygon, what: str
) -> list[Polygon | MultiPolygon]:
    """Voronoi cells of ``points`` (in a locally isotropic metric) clipped to ``parent``;
    the i-th result belongs to the i-th point."""
    if len(points) == 1:
        return [parent]
    scaled = MultiPoint([(x * _LON_SCALE, y) for x, y in points])
    minx, miny, maxx, maxy = parent.bounds
    envelope = box(minx * _LON_SCALE - 1.0, miny - 1.0, maxx * _LON_SCALE + 1.0, maxy + 1.0)
    cells = list(shapely.get_parts(shapely.voronoi_polygons(scaled, extend_to=envelope)))
    unscale = np.array([_LON_SCALE, 1.0])
    result: list[Polygon | MultiPolygon] = []
    for x, y in points:
        probe = Point(x * _LON_SCALE, y)
        owners = [cell for cell in cells if cell.contains(probe)]
        if len(owners) != 1:
            raise RuntimeError(f"demo city: no single Voronoi cell for {what} at {x}, {y}")
        cell = shapely.transform(owners[0], lambda xy: xy / unscale)
        clipped = shapely.intersection(cell, parent)
        result.append(_polygonal(clipped, f"{what} cell at {x}, {y}"))
    return result


def _union(geoms: Sequence[Any], what: str) -> Polygon | MultiPolygon:
    return _polygonal(shapely.union_all(list(geoms)), what)


def _contains(geom: Any, lon: float, lat: float) -> bool:
    return bool(shapely.contains_xy(geom, lon, lat))


def _sample_near(
    rng: random.Random,
    geom: Any,
    lon: float,
    lat: float,
    sigma: float,
    accept: Callable[[float, float], bool] | None = None,
    tries: int = 60,
) -> tuple[float, float]:
    """A point inside ``geom``, gaussian around (lon, lat); falls back to uniform
    sampling over the geometry and finally to (lon, lat) itself."""
    for _ in range(tries):
        x = lon + rng.gauss(0.0, sigma) / _LON_SCALE
        y = lat + rng.gauss(0.0, sigma)
        if _contains(geom, x, y) and (accept is None or accept(x, y)):
            return round(x, 6), round(y, 6)
    minx, miny, maxx, maxy = geom.bounds
    for _ in range(tries):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if _contains(geom, x, y) and (accept is None or accept(x, y)):
            return round(x, 6), round(y, 6)
    return lon, lat


# --------------------------------------------------------------------------- builders


class _Names:
    """Unique Pashto/Urdu person names drawn from the seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def take(self, female_share: float = 0.0) -> str:
        rng = self._rng
        for _ in range(1000):
            pool = _GIVEN_NAMES_F if rng.random() < female_share else _GIVEN_NAMES
            given = rng.choice(pool)
            name = f"{given} {rng.choice(_FAMILY_NAMES)}" if rng.random() < 0.8 else given
            if name not in self._used:
                self._used.add(name)
                return name
        raise RuntimeError("demo city: ran out of names")


@dataclass(frozen=True)
class _Geo:
    province: Area
    districts: tuple[Area, ...]
    tehsils: tuple[Area, ...]
    stations: tuple[Area, ...]
    localities: dict[str, tuple[str, ...]]
    station_district: dict[str, str]


def _build_geography(rng: random.Random) -> _Geo:
    outline = _province_outline(rng)

    generators = [
        gen if gen is not None else (stations_src[0][1], stations_src[0][2])
        for _, _, gen, stations_src in _TEHSILS
    ]
    for _, tehsil_name, _, stations_src in _TEHSILS:
        for name, lon, lat, _ in stations_src:
            if not _contains(outline, lon, lat):
                raise RuntimeError(f"demo city: {name} ({tehsil_name}) is outside the province")
    tehsil_cells = _voronoi_partition(generators, outline, "tehsil")

    tehsils: list[Area] = []
    stations: list[Area] = []
    localities: dict[str, tuple[str, ...]] = {}
    station_district: dict[str, str] = {}
    for (district_code, tehsil_name, _, station_srcs), cell in zip(
        _TEHSILS, tehsil_cells, strict=True
    ):
        tehsil_code = f"{district_code}-{_slug(tehsil_name, '-').upper()}"
        seat_lon, seat_lat = station_srcs[0][1], station_srcs[0][2]
        tehsils.append(
            Area(tehsil_code, tehsil_name, "tehsil", district_code, cell, Point(seat_lon, seat_lat))
        )
        points = [(lon, lat) for _, lon, lat, _ in station_srcs]
        for name, lon, lat, _ in station_srcs:
            if not _contains(cell, lon, lat):
                raise RuntimeError(f"demo city: {name} is outside tehsil {tehsil_name}")
        jurisdictions = _voronoi_partition(points, cell, f"{tehsil_name} station")
        for (name, lon, lat, locs), geom in zip(station_srcs, jurisdictions, strict=True):
            short = district_code.split("-")[1]
            code = f"PS-{short}-{_slug(name.removeprefix('PS '), '-').upper()}"
            stations.append(Area(code, name, "station", tehsil_code, geom, Point(lon, lat)))
            localities[code] = locs
            station_district[code] = district_code

    districts: list[Area] = []
    for code, name, _, _ in _DISTRICTS:
        members = [t for t in tehsils if t.parent_code == code]
        geom = _union([t.geometry for t in members], f"district {name}")
        districts.append(Area(code, name, "district", _PROVINCE[0], geom, members[0].location))

    province_geom = _union([d.geometry for d in districts], "province")
    province = Area(
        _PROVINCE[0], _PROVINCE[1], "province", None, province_geom, districts[0].location
    )
    return _Geo(
        province, tuple(districts), tuple(tehsils), tuple(stations), localities, station_district
    )


def _seat_tehsil_codes(geo: _Geo) -> set[str]:
    """Codes of the tehsils that hold a district headquarters."""
    return {t.code for t in geo.tehsils if t.name in _SEAT_TEHSILS}


def _station_of(stations: Sequence[Area], lon: float, lat: float) -> Area | None:
    for station in stations:
        if _contains(station.geometry, lon, lat):
            return station
    return None


def _build_sites(rng: random.Random, geo: _Geo) -> tuple[Site, ...]:
    stations = geo.stations
    placed: list[tuple[str, str, float, float, str]] = []
    used_names: set[str] = set()
    for name, kind, lon, lat in _SITES:
        station = _station_of(stations, lon, lat)
        if station is None:
            raise RuntimeError(f"demo city: site {name} is outside the province")
        placed.append((name, kind, lon, lat, station.code))
        used_names.add(name)

    city_tehsil = geo.tehsils[0].code
    seat_tehsils = _seat_tehsil_codes(geo)
    weights = [
        5.0 if st.parent_code == city_tehsil else 2.0 if st.parent_code in seat_tehsils else 1.0
        for st in stations
    ]
    kinds = [k for k, _, _ in _FILLER_KINDS]
    kind_weights = [w for _, w, _ in _FILLER_KINDS]
    templates = {k: t for k, _, t in _FILLER_KINDS}

    def far_enough(x: float, y: float) -> bool:
        return all(
            ((x - px) * _LON_SCALE) ** 2 + (y - py) ** 2 > 0.0006**2 for _, _, px, py, _ in placed
        )

    while len(placed) < SITE_TOTAL:
        station = rng.choices(stations, weights=weights)[0]
        kind = rng.choices(kinds, weights=kind_weights)[0]
        loc = rng.choice(geo.localities[station.code])
        name = rng.choice(templates[kind]).format(loc=loc)
        if name in used_names:
            continue
        dense = station.parent_code == city_tehsil
        lon, lat = _sample_near(
            rng,
            station.geometry,
            station.lon,
            station.lat,
            0.004 if dense else 0.012,
            accept=far_enough,
        )
        used_names.add(name)
        placed.append((name, kind, lon, lat, station.code))

    return tuple(
        Site(f"SITE-{i:03d}", name, kind, lon, lat, station_code)
        for i, (name, kind, lon, lat, station_code) in enumerate(placed, start=1)
    )


def _camera_target(rng: random.Random, site: Site) -> int:
    lo, hi = {
        "toll_plaza": (8, 12),
        "terminal": (6, 11),
        "embassy": (6, 10),
        "chowk": (4, 9),
        "market": (4, 8),
        "government": (3, 7),
        "hospital": (3, 7),
        "university": (3, 7),
        "bank": (2, 5),
        "school": (2, 4),
    }[site.kind]
    return rng.randint(lo, hi)


def _camera_kinds(rng: random.Random, site: Site, count: int) -> list[str]:
    kinds: list[str] = []
    main_road = any(word in site.name for word in _MAIN_ROAD_WORDS)
    if site.kind == "toll_plaza":
        anpr = max(2, round(count * 0.6))
        kinds += ["anpr"] * anpr + ["ptz"]
    elif site.kind in ("terminal", "embassy"):
        kinds += ["face"] * max(2, round(count * 0.4)) + ["ptz"]
    elif site.kind == "chowk":
        kinds += ["ptz"] + ["anpr"] * (2 if main_road else rng.randint(0, 1))
    elif site.kind in ("hospital", "bank", "government", "university"):
        kinds += ["ptz"] if count >= 4 else []
        kinds += ["face"] if rng.random() < 0.5 else []
    else:
        kinds += ["ptz"] if count >= 3 else []
    kinds = kinds[:count]
    kinds += ["fixed"] * (count - len(kinds))
    return kinds


def _build_cameras(rng: random.Random, geo: _Geo, sites: Sequence[Site]) -> tuple[Camera, ...]:
    counts = [_camera_target(rng, site) for site in sites]
    while sum(counts) > CAMERA_TOTAL:
        i = rng.randrange(len(counts))
        if counts[i] > 2:
            counts[i] -= 1
    while sum(counts) < CAMERA_TOTAL:
        i = rng.randrange(len(counts))
        if counts[i] < 12:
            counts[i] += 1

    by_code = {s.code: s for s in geo.stations}
    labels = {"fixed": "FIX", "ptz": "PTZ", "anpr": "ANPR", "face": "FACE"}
    cameras: list[Camera] = []
    for site_no, (site, count) in enumerate(zip(sites, counts, strict=True), start=1):
        jurisdiction = by_code[site.station_code].geometry
        per_label: dict[str, int] = {}
        for k, kind in enumerate(_camera_kinds(rng, site, count)):
            per_label[kind] = per_label.get(kind, 0) + 1
            lon, lat = _sample_near(rng, jurisdiction, site.lon, site.lat, 0.00025, tries=20)
            cameras.append(
                Camera(
                    code=f"CAM-{len(cameras) + 1:04d}",
                    name=f"{site.name} {labels[kind]}-{per_label[kind]}",
                    site_code=site.code,
                    kind=kind,
                    heading_deg=round(rng.uniform(0.0, 360.0), 1) % 360.0,
                    stream_url=f"rtsp://10.20.{site_no}.{11 + k}:554/Streaming/Channels/101",
                    lon=lon,
                    lat=lat,
                )
            )
    return tuple(cameras)


def _build_units(rng: random.Random, geo: _Geo) -> tuple[Unit, ...]:
    stations = geo.stations
    city_tehsil = geo.tehsils[0].code
    counts = [2] * len(stations)
    weights = [3.0 if st.parent_code == city_tehsil else 1.0 for st in stations]
    for _ in range(UNIT_TOTAL - sum(counts)):
        counts[rng.choices(range(len(stations)), weights=weights)[0]] += 1

    prefixes = {code: prefix for code, _, prefix, _ in _DISTRICTS}
    numbers = dict.fromkeys(prefixes, 0)
    units: list[Unit] = []
    for station, count in zip(stations, counts, strict=True):
        district = geo.station_district[station.code]
        dense = station.parent_code == city_tehsil
        for i in range(count):
            if i == 0:
                kind = "patrol_car"
            elif i == 1:
                kind = "motorcycle"
            else:
                kind = rng.choices(UNIT_KINDS, weights=(3, 4, 3))[0]
            if kind == "patrol_car":
                squad = "Rapid Response Force" if dense and rng.random() < 0.5 else "Station Patrol"
            elif kind == "motorcycle":
                squad = "Muhafiz Squad"
            else:
                squad = "Beat Patrol"
            numbers[district] += 1
            callsign = f"{prefixes[district]}-{numbers[district]}"
            sigma = 0.003 if kind == "foot" else 0.006 if dense else 0.015
            lon, lat = _sample_near(rng, station.geometry, station.lon, station.lat, sigma)
            units.append(Unit(f"U-{callsign}", callsign, kind, station.code, lon, lat, squad))
    return tuple(units)


def _build_people(
    rng: random.Random, geo: _Geo, units: Sequence[Unit]
) -> tuple[tuple[Officer, ...], tuple[DemoUser, ...]]:
    names = _Names(rng)
    officers: list[Officer] = []
    users: list[DemoUser] = []

    def officer(**kwargs: Any) -> Officer:
        record = Officer(code=f"OFF-{len(officers) + 1:04d}", **kwargs)
        officers.append(record)
        return record

    for code, username, role, full_name in (
        ("all", "admin", "admin", "Command Centre Administrator"),
        ("all", "calltaker", "call_taker", names.take(0.5)),
        ("all", "dispatcher", "dispatcher", names.take()),
        ("all", "analyst", "analyst", names.take(0.5)),
    ):
        users.append(DemoUser(username, full_name, role, code, None))

    sp_usernames = {code: username for code, _, _, username in _DISTRICTS}
    for district in geo.districts:
        sp = officer(
            name=names.take(),
            rank="SP",
            station_code=None,
            tehsil_code=None,
            district_code=district.code,
            post="SP",
        )
        users.append(
            DemoUser(
                sp_usernames[district.code],
                sp.name,
                "district_sp",
                "district",
                district.code,
                officer_code=sp.code,
            )
        )
    for tehsil in geo.tehsils:
        sdpo = officer(
            name=names.take(),
            rank="DSP",
            station_code=None,
            tehsil_code=tehsil.code,
            district_code=tehsil.parent_code,
            post="SDPO",
        )
        users.append(
            DemoUser(
                f"sdpo.{_slug(tehsil.name)}",
                sdpo.name,
                "sdpo",
                "tehsil",
                tehsil.code,
                officer_code=sdpo.code,
            )
        )
    seat_tehsils = _seat_tehsil_codes(geo)
    tehsil_of = {s.code: s.parent_code for s in geo.stations}
    for station in geo.stations:
        sho = officer(
            name=names.take(),
            rank="Inspector" if station.parent_code in seat_tehsils else "SI",
            station_code=station.code,
            tehsil_code=station.parent_code,
            district_code=geo.station_district[station.code],
            post="SHO",
        )
        users.append(
            DemoUser(
                f"sho.{_slug(station.name.removeprefix('PS '))}",
                sho.name,
                "sho",
                "station",
                station.code,
                officer_code=sho.code,
            )
        )

    rank_weights = {
        "patrol_car": (("ASI", 5), ("SI", 2), ("Head Constable", 3)),
        "motorcycle": (("Constable", 6), ("Head Constable", 3), ("ASI", 1)),
        "foot": (("Constable", 8), ("Head Constable", 2)),
    }
    seen_stations: set[str] = set()
    for unit in units:
        ranks, weights = zip(*rank_weights[unit.kind], strict=True)
        crew = officer(
            name=names.take(0.08),
            rank=rng.choices(ranks, weights=weights)[0],
            station_code=unit.station_code,
            tehsil_code=tehsil_of[unit.station_code],
            district_code=geo.station_district[unit.station_code],
            post="Unit",
            unit_code=unit.code,
        )
        if unit.station_code not in seen_stations:
            seen_stations.add(unit.station_code)
            users.append(
                DemoUser(
                    f"officer.{unit.callsign.replace('-', '').lower()}",
                    crew.name,
                    "field_officer",
                    "station",
                    unit.station_code,
                    officer_code=crew.code,
                    unit_code=unit.code,
                )
            )
    return tuple(officers), tuple(users)


def build_demo_city(seed: int = 7) -> DemoCity:
    """Build the demo province. Deterministic: the same ``seed`` gives identical output."""
    geo = _build_geography(random.Random(f"democity-geo-{seed}"))
    sites = _build_sites(random.Random(f"democity-sites-{seed}"), geo)
    cameras = _build_cameras(random.Random(f"democity-cameras-{seed}"), geo, sites)
    units = _build_units(random.Random(f"democity-units-{seed}"), geo)
    officers, users = _build_people(random.Random(f"democity-people-{seed}"), geo, units)
    return DemoCity(
        seed=seed,
        province=geo.province,
        districts=geo.districts,
        tehsils=geo.tehsils,
        stations=geo.stations,
        sites=sites,
        cameras=cameras,
        units=units,
        officers=officers,
        users=users,
        call_categories=CALL_CATEGORIES,
    )
