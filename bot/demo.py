"""Demo data for sandbox mode: a small park with streets, communities, estates and stewards."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Estate, Organisation, Steward

PARK = {
    "code": "park", "name": "苏州工业园区", "kind": "park",
    "children": [
        {"code": "orgdept", "name": "园区党工委组织部", "kind": "organisation_department",
         "email": "orgdept@park.local"},
        {"code": "dept_housing", "name": "园区规划建设委员会", "kind": "park_department",
         "email": "housing@park.local"},
        {"code": "hx_street", "name": "湖西街道", "kind": "street", "children": [
            {"code": "hx_swc", "name": "湖西社工委", "kind": "social_work_committee",
             "email": "huxi-swc@park.local"},
            {"code": "xinghu", "name": "星湖社区", "kind": "community",
             "estates": [("xhy", "星湖苑"), ("lhjy", "玲珑家园")],
             "stewards": [("sandbox_steward_xinghu", "王红梅")]},
            {"code": "hanlin", "name": "翰林社区", "kind": "community",
             "estates": [("hlsy", "翰林水岸"), ("yhy", "月亮湾花园")],
             "stewards": [("sandbox_steward_hanlin", "李建国")]},
        ]},
    ],
}


def load(session: Session, only_if_empty: bool = False) -> bool:
    """Inserts the demo park; with only_if_empty, does nothing when organisations exist."""
    if only_if_empty and session.scalar(select(func.count(Organisation.id))):
        return False
    _org(session, PARK, None)
    session.commit()
    return True


def _org(session: Session, spec: dict, parent: Organisation | None) -> None:
    """Creates (or finds) one organisation and everything under it."""
    org = session.scalar(select(Organisation).where(Organisation.code == spec["code"]))
    if org is None:
        org = Organisation(code=spec["code"], name=spec["name"], kind=spec["kind"],
                           parent=parent, email=spec.get("email"))
        session.add(org)
        session.flush()
    for code, name in spec.get("estates", []):
        if session.scalar(select(Estate).where(Estate.code == code)) is None:
            session.add(Estate(code=code, name=name, community_id=org.id))
    for openid, name in spec.get("stewards", []):
        if session.scalar(select(Steward).where(Steward.openid == openid)) is None:
            session.add(Steward(openid=openid, name=name, community_id=org.id))
    for child in spec.get("children", []):
        _org(session, child, org)
