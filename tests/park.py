"""Test data on the shipped example park: the directory imported, one resident's request filed."""
from __future__ import annotations

from sqlalchemy import select

from bot import orgimport
from models import Estate, Resident, file_request


def park_with_request(sessions, openid: str, description: str, estate: str = "xhy", **resident) -> str:
    """Imports org.example.yaml and files a request for a resident of the estate; returns its ref."""
    with sessions() as s:
        orgimport.import_file(s, orgimport.EXAMPLE_PATH)
        place = s.scalar(select(Estate).where(Estate.code == estate))
        person = Resident(openid=openid, estate_id=place.id, **resident)
        s.add(person)
        s.flush()
        req = file_request(s, kind="help", description=description, resident_id=person.id,
                           estate_id=place.id, community_id=place.community_id)
        s.commit()
        return req.ref
