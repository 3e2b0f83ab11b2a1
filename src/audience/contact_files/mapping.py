"""Which column of a file feeds which ContactInput field: forgiving by default, overridable."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audience.db.models import FIELDS

EMAIL = "email"
ALL_FIELDS: tuple[str, ...] = (EMAIL, *FIELDS)

#: Columns (CSV) or keys (JSON Lines) that an errors file adds in front of the original row;
#: they are never imported, so an errors file can be imported again as it is.
RESERVED: tuple[str, ...] = ("_line", "_email", "_error", "_raw")
#: The first columns of a server-side import's error report (imports.errors), also never
#: imported when a file starts with them: a fixed report is uploaded again as it is.
REPORT_COLUMNS: tuple[str, ...] = ("line", "email", "error")

#: Spellings seen in exports, after `normalize` (the field names themselves need no entry):
#: common English ones, Mailchimp's (`Email Address`, `CC`, `REGION`, `TIMEZONE`, …),
#: HubSpot's (`Record ID`, `State/Region`, `Country/Region`, …), and German, French, Spanish,
#: Italian, Portuguese and Dutch headers.
ALIASES: dict[str, str] = {
    alias: name
    for name, aliases in {
        "email": "mail emailaddress emailaddr mailaddress emailid primaryemail contactemail "
        "email1 correo correoelectronico courriel adressemail adresseemail adressecourriel "
        "mailadresse emailadresse posta postaelettronica indirizzoemail emailadres",
        "external_id": "id externalid externalref customerid userid contactid crmid recordid "
        "hubspotid mailchimpid leid uniqueid",
        "first_name": "firstname first fname givenname forename vorname prenom nombre nome "
        "voornaam primeironome",
        "last_name": "lastname last lname surname familyname nachname nom apellido apellidos "
        "cognome sobrenome achternaam",
        "full_name": "fullname name displayname contactname vollstandigername nomcomplet "
        "nombrecompleto nomecompleto",
        "phone": "phonenumber telephone tel mobile mobilephone mobilenumber cellphone cell "
        "telefon telefono telefone handy portable movil celular cellulare",
        "address_line_1": "address addressline1 address1 street streetaddress strasse "
        "adresse direccion indirizzo endereco adres",
        "address_line_2": "addressline2 address2 adresszusatz complementdadresse",
        "country": "countrycode countryregion cc land pays pais paese",
        "postcode": "postalcode zip zipcode zippostalcode plz codepostal codigopostal cap "
        "postleitzahl cep",
        "state": "province region stateprovince stateregion bundesland provincia estado",
        "job_title": "jobtitle title position beruf poste puesto cargo",
        "timezone": "tz timezonename zeitzone fuseauhoraire zonahoraria",
        "language": "lang locale preferredlanguage sprache langue idioma lingua",
    }.items()
    for alias in aliases.split()
}


class MappingError(ValueError):
    """A mapping that cannot be used: the command stops before sending anything."""


@dataclass(frozen=True)
class Mapping:
    """Column positions → fields, and what was left out."""

    header: tuple[str, ...]
    columns: tuple[tuple[int, str], ...]
    #: Columns no field takes (reported to the user).
    unmapped: tuple[str, ...] = ()
    #: Columns left out on purpose: `--map "COLUMN="`, and an errors file's own columns.
    ignored: tuple[str, ...] = ()


def normalize(name: str) -> str:
    """`E-mail Address`, `e_mail_address` and `EmailAddress` all become `emailaddress`;
    accents are dropped (`Prénom` → `prenom`, `Straße` → `strasse`)."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    return re.sub(r"[^0-9a-z]", "", "".join(c for c in folded if not unicodedata.combining(c)))


_BY_NAME: dict[str, str] = {normalize(name): name for name in ALL_FIELDS}


def guess_field(column: str) -> str | None:
    """The field a column name most likely means, or None."""
    key = normalize(column)
    return _BY_NAME.get(key) or ALIASES.get(key)


def parse_overrides(specs: Iterable[str]) -> dict[str, str | None]:
    """`--map "Column=field"` options; `Column=` (no field) leaves the column out."""
    overrides: dict[str, str | None] = {}
    for spec in specs:
        column, sep, target = spec.rpartition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column:
            raise MappingError(f"--map {spec!r}: expected COLUMN=FIELD")
        if target and target not in ALL_FIELDS:
            raise MappingError(f"--map {spec!r}: unknown field {target!r}")
        overrides[column] = target or None
    targets = [t for t in overrides.values() if t]
    for target in targets:
        if targets.count(target) > 1:
            raise MappingError(f"--map: more than one column is mapped to {target!r}")
    return overrides


def map_header(
    header: Sequence[str], overrides: dict[str, str | None], *, option: str = "--map"
) -> Mapping:
    """Map each column of a CSV header to a field; the overrides win. `option` names where
    the overrides come from in the errors (--map, or an import job's `mapping`)."""
    header = tuple(header)
    explicit = _resolve_overrides(header, overrides, option)
    columns: list[tuple[int, str]] = []
    unmapped: list[str] = []
    ignored: list[str] = []
    for position, (column, target) in enumerate(
        zip(header, _targets(header, explicit), strict=True)
    ):
        if target is None:
            (ignored if position in explicit else unmapped).append(column)
        elif target == _LEFT_OUT:
            ignored.append(column)
        else:
            columns.append((position, target))
    if EMAIL not in {name for _, name in columns}:
        how = "--map 'COLUMN=email'" if option == "--map" else f'{option} {{"COLUMN": "email"}}'
        raise MappingError(
            f"no column maps to email; name one with {how} (columns: {', '.join(header) or 'none'})"
        )
    return Mapping(header, tuple(columns), tuple(unmapped), tuple(ignored))


#: A column an errors file or a report adds: never imported, whatever its name.
_LEFT_OUT = "\x00left out"


def _targets(header: tuple[str, ...], explicit: dict[int, str | None]) -> list[str | None]:
    """Per column, its field: the explicit one, else the guess that no earlier column took
    (None: unmapped; _LEFT_OUT: a column of an errors file or a report)."""
    taken = {name for name in explicit.values() if name}
    report = len(header) > len(REPORT_COLUMNS) and header[: len(REPORT_COLUMNS)] == REPORT_COLUMNS
    targets: list[str | None] = []
    for position, column in enumerate(header):
        if column in RESERVED or (report and position < len(REPORT_COLUMNS)):
            targets.append(_LEFT_OUT)
            continue
        target = explicit[position] if position in explicit else _auto(column, taken)
        if target is not None:
            taken.add(target)
        targets.append(target)
    return targets


def suggested_fields(header: Sequence[str]) -> list[str | None]:
    """Per column of a header, the field map_header would give it without overrides (None:
    none, or a column that is never imported): the console's mapping step starts there."""
    return [None if t == _LEFT_OUT else t for t in _targets(tuple(header), {})]


def _auto(column: str, taken: set[str]) -> str | None:
    guess = guess_field(column)
    return None if guess in taken else guess


def _resolve_overrides(
    header: tuple[str, ...], overrides: dict[str, str | None], option: str
) -> dict[int, str | None]:
    """Override targets by column position: the exact name first, then a forgiving match."""
    resolved: dict[int, str | None] = {}
    for column, target in overrides.items():
        positions = [i for i, name in enumerate(header) if name == column] or [
            i for i, name in enumerate(header) if normalize(name) == normalize(column)
        ]
        if not positions:
            raise MappingError(f"{option}: no column named {column!r} in the header")
        resolved[positions[0]] = target
    return resolved
