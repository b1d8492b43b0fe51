"""Demo data for sandbox mode: the shipped org.example.yaml park, and what others add."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Organisation

from . import orgimport


def load(session: Session, only_if_empty: bool = False) -> bool:
    """Inserts the demo park; with only_if_empty, does nothing when organisations exist."""
    if only_if_empty and session.scalar(select(func.count(Organisation.id))):
        return False
    orgimport.apply(session, orgimport.read(orgimport.EXAMPLE_PATH))
    session.flush()
    from .console.users import load_demo_users
    load_demo_users(session)
    from .content import EXAMPLE, load_file
    load_file(session, EXAMPLE)  # commits the park and the demo announcements and handbook
    from .activity_demo import load_demo_activities
    load_demo_activities(session)
    session.commit()
    return True
