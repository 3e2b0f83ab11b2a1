"""The words the datasets draw from: names, domains, time zones, places, JSON keys."""

# ruff: noqa: SIM905  (word lists are easier to read and edit as strings)

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

FIRST_NAMES = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
    "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew "
    "donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy "
    "stephanie ronald rebecca jason sharon edward laura jeffrey cynthia ryan amy jacob kathleen "
    "gary angela nicholas shirley eric anna jonathan brenda stephen pamela larry emma justin "
    "nicole scott helen brandon samantha benjamin katherine samuel christine gregory debra "
    "alexander rachel frank carolyn patrick janet raymond maria jack olivia dennis heather "
    "jerry diane tyler julie aaron joyce jose victoria adam ruth henry virginia nathan lauren "
    "douglas kelly zachary christina peter joan kyle evelyn noah judith ethan andrea jeremy "
    "hannah walter megan christian cheryl keith jacqueline roger martha terry madison austin "
    "teresa sean gloria gerald sara carl janice harold ann dylan kathryn arthur abigail"
).split()
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white "
    "harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres "
    "nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts "
    "gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales "
    "murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos "
    "kim cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes "
    "price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins perry "
    "russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons"
).split()
#: Names with letters outside ASCII (composed, NFC), for the json-heavy dataset.
ACCENTED_FIRST_NAMES = (
    "josé zoë renée andré françois hélène jürgen björn søren åsa łukasz małgorzata "
    "núria iñigo begoña maël chloé noémie jérôme cécile özgür şule dóra ágnes "
    "mårten øyvind ærin íñigo joão conceição"
).split()
ACCENTED_LAST_NAMES = (
    "müller schröder gómez núñez peña muñoz sørensen løvaas wałęsa kowalczyk "
    "dvořák čapek lefèvre côté bélanger mañas gärtner østergård ibáñez fernández "
    "jäger höglund brontë françois çelik şahin"
).split()
#: How the letters that do not decompose under NFKD are written in an ASCII email.
ASCII_LETTERS = str.maketrans({"ø": "o", "ł": "l", "æ": "ae", "ß": "ss", "đ": "d"})
DOMAINS = (
    "gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me gmx.de orange.fr "
    "acme.io example.org initech.com globex.net umbrella.co hooli.xyz mail.ru web.de"
).split()
TIMEZONES = (
    "Europe/Paris Europe/London Europe/Berlin America/New_York America/Chicago "
    "America/Los_Angeles America/Sao_Paulo Asia/Tokyo Asia/Kolkata Australia/Sydney UTC "
    "Africa/Lagos Asia/Singapore America/Toronto Europe/Madrid"
).split()
LANGUAGES = "en fr de es pt it ja nl pl sv".split()
COUNTRIES = "US FR DE GB ES PT IT JP NL PL SE CA BR AU IN".split()
STATES = "CA NY TX WA IL Bavaria Ile-de-France Ontario Queensland".split()
JOBS = (
    "Engineer|Product Manager|Designer|Sales Director|CEO|Accountant|Teacher|Nurse|Consultant|"
    "Marketing Lead|Data Scientist|Support Agent|Founder|Student|Lawyer"
).split("|")
STREETS = "Main St|High Street|Rue de la Paix|Hauptstrasse|Oak Avenue|Elm Road|Calle Mayor".split(
    "|"
)
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
#: Keys of the json-heavy dataset's nested objects.
JSON_KEYS = (
    "plan seats active tags utm profile events prefs address score since source campaign "
    "flags history device locale consent owner notes"
).split()
PLANS = ("free", "starter", "pro", "business", "enterprise")
#: Whole-hour offsets of the realistic dataset's date-times.
OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (-8, -5, 0, 1, 2, 5, 9))
#: Offsets with minutes (and UTC) of the json-heavy dataset's date-times.
MINUTE_OFFSETS = tuple(
    timezone(timedelta(minutes=m)) for m in (330, -210, 345, 570, 765, -480, 60, 0, -570)
)
EPOCH = datetime(2015, 1, 1, tzinfo=UTC)
