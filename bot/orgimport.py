"""The organisation directory from YAML (org.example.yaml documents the format); re-import is idempotent."""
from __future__ import annotations

import re
from pathlib import Path

import click
import yaml
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Estate, Liaison, Organisation, Steward

EXAMPLE_PATH = Path(__file__).resolve().parent.parent / "org.example.yaml"
CODE_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

org_cli = AppGroup("org", help="The organisation directory.")


class DirectoryError(ValueError):
    """The directory file is wrong; `problems` names each place."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def read(path: str | Path) -> dict:
    """Reads and validates a directory file; raises DirectoryError naming every problem."""
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise DirectoryError([f"{path}: not valid YAML: {exc}"]) from None
    problems: list[str] = []
    park = data.get("park") if isinstance(data, dict) else None
    if not isinstance(park, dict):
        raise DirectoryError([f"{path}: a top-level `park:` is required"])
    seen: set[str] = set()
    _check_org(park, "park", problems, seen)
    if park.get("organisation_department"):
        _check_org(park["organisation_department"], "park.organisation_department", problems, seen)
    for i, dept in enumerate(park.get("departments") or []):
        _check_org(dept, f"park.departments[{i}]", problems, seen, email=True)
    for i, street in enumerate(park.get("streets") or []):
        where = f"park.streets[{i}]"
        _check_org(street, where, problems, seen)
        if not street.get("social_work_committee"):
            problems.append(f"{where}: social_work_committee is required")
        else:
            _check_org(street["social_work_committee"], f"{where}.social_work_committee", problems, seen,
                       email=True)
        for j, comm in enumerate(street.get("communities") or []):
            cwhere = f"{where}.communities[{j}]"
            _check_org(comm, cwhere, problems, seen)
            for key in ("party_organisation", "residents_committee", "workstation"):
                if comm.get(key):
                    _check_org(comm[key], f"{cwhere}.{key}", problems, seen)
            for k, steward in enumerate(comm.get("stewards") or []):
                if not isinstance(steward, dict) or not steward.get("openid") or not steward.get("name"):
                    problems.append(f"{cwhere}.stewards[{k}]: openid and name are required")
            for k, estate in enumerate(comm.get("estates") or []):
                ewhere = f"{cwhere}.estates[{k}]"
                _check_code(estate, ewhere, problems, seen)
                for key in ("owners_committee", "property_company"):
                    if estate.get(key):
                        _check_org(estate[key], f"{ewhere}.{key}", problems, seen)
    if problems:
        raise DirectoryError([f"{path}: {p}" for p in problems])
    return data


def _check_code(spec, where: str, problems: list[str], seen: set[str]) -> None:
    """Every entry needs a unique code and a name."""
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected a mapping")
        return
    code = str(spec.get("code") or "")
    if not CODE_RE.match(code):
        problems.append(f"{where}: code {code!r} must be 1-64 letters, digits or _")
    elif code in seen:
        problems.append(f"{where}: code {code!r} is used twice")
    seen.add(code)
    if not spec.get("name"):
        problems.append(f"{where}: name is required")


def _check_org(spec, where: str, problems: list[str], seen: set[str], email: bool = False) -> None:
    """An organisation: code, name, an e-mail where mail is sent, and well-formed liaisons."""
    _check_code(spec, where, problems, seen)
    if not isinstance(spec, dict):
        return
    if email and not spec.get("email"):
        problems.append(f"{where}: email is required (mail is sent to and from it)")
    for n, liaison in enumerate(spec.get("liaisons") or []):
        if not isinstance(liaison, dict) or not liaison.get("name") or not (
                liaison.get("openid") or liaison.get("email")):
            problems.append(f"{where}.liaisons[{n}]: name and an openid or email are required")


def apply(session: Session, data: dict) -> dict[str, int]:
    """Creates or updates every organisation, estate, steward and liaison; returns counts."""
    counts = {"organisations": 0, "estates": 0, "stewards": 0, "liaisons": 0}
    park_spec = data["park"]
    park = _org(session, park_spec, "park", None, counts)
    if park_spec.get("organisation_department"):
        _org(session, park_spec["organisation_department"], "organisation_department", park, counts)
    for dept in park_spec.get("departments") or []:
        _org(session, dept, "park_department", park, counts)
    for street_spec in park_spec.get("streets") or []:
        street = _org(session, street_spec, "street", park, counts)
        _org(session, street_spec["social_work_committee"], "social_work_committee", street, counts)
        for comm_spec in street_spec.get("communities") or []:
            _community(session, comm_spec, street, counts)
    session.flush()
    return counts


def _community(session: Session, spec: dict, street: Organisation, counts: dict) -> None:
    """A community with its own bodies, stewards and estates."""
    community = _org(session, spec, "community", street, counts)
    party = None
    for kind in ("party_organisation", "residents_committee", "workstation"):
        if spec.get(kind):
            org = _org(session, spec[kind], kind, community, counts)
            party = org if kind == "party_organisation" else party
    for steward_spec in spec.get("stewards") or []:
        steward = session.scalar(select(Steward).where(Steward.openid == steward_spec["openid"]))
        if steward is None:
            steward = Steward(openid=steward_spec["openid"])
            session.add(steward)
        steward.name, steward.community_id = steward_spec["name"], community.id
        steward.email = steward_spec.get("email")
        counts["stewards"] += 1
    for estate_spec in spec.get("estates") or []:
        estate = session.scalar(select(Estate).where(Estate.code == estate_spec["code"]))
        if estate is None:
            estate = Estate(code=estate_spec["code"])
            session.add(estate)
        estate.name, estate.community_id = estate_spec["name"], community.id
        estate.party_organisation = party
        for kind in ("owners_committee", "property_company", "party_organisation"):
            if estate_spec.get(kind):
                setattr(estate, kind, _org(session, estate_spec[kind], kind, community, counts))
        counts["estates"] += 1


def _org(session: Session, spec: dict, kind: str, parent: Organisation | None, counts: dict) -> Organisation:
    """Creates or updates one organisation (matched by code) and its liaisons."""
    org = session.scalar(select(Organisation).where(Organisation.code == spec["code"]))
    if org is None:
        org = Organisation(code=spec["code"])
        session.add(org)
    org.name, org.kind, org.parent, org.email = spec["name"], kind, parent, spec.get("email")
    session.flush()
    counts["organisations"] += 1
    listed = set()
    for liaison_spec in spec.get("liaisons") or []:
        liaison = _find_liaison(session, org, liaison_spec)
        if liaison is None:
            liaison = Liaison(organisation_id=org.id)
            session.add(liaison)
        liaison.organisation_id = org.id
        liaison.openid = liaison_spec.get("openid")
        liaison.name, liaison.email, liaison.active = liaison_spec["name"], liaison_spec.get("email"), True
        session.flush()
        listed.add(liaison.id)
        counts["liaisons"] += 1
    for liaison in session.scalars(select(Liaison).where(Liaison.organisation_id == org.id)):
        if liaison.id not in listed:
            # Kept for the timeline's sake, but no longer sent anything.
            liaison.active = False
    return org


def _find_liaison(session: Session, org: Organisation, spec: dict) -> Liaison | None:
    """The liaison a file entry means: by openid anywhere, else by e-mail within the organisation."""
    if spec.get("openid"):
        found = session.scalar(select(Liaison).where(Liaison.openid == spec["openid"]))
        if found is not None:
            return found
    if spec.get("email"):
        return session.scalar(select(Liaison).where(Liaison.organisation_id == org.id,
                                                    Liaison.email == spec["email"]))
    return None


def import_file(session: Session, path: str | Path) -> dict[str, int]:
    """Reads, validates and applies a directory file in one transaction."""
    data = read(path)
    counts = apply(session, data)
    session.commit()
    return counts


@org_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_command(path):
    """Import (or re-import) the organisation directory from PATH."""
    from .db import get_session
    try:
        counts = import_file(get_session(), path)
    except DirectoryError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from None
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@org_cli.command("routing-check")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
def routing_check(path):
    """Validate routing.yaml (or PATH)."""
    from models import routing
    try:
        rules = routing.load(path)
    except routing.RoutingError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"ok: {len(rules.rules)} rules")
