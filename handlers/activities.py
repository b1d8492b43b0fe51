"""活动报名: list, sign up, waitlist, cancel; check-in/out by QR scan; stewards' `活动 …` commands."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models import Activity, Signup, Steward
from models import activity as activities
from models import points as points_ledger
from models import volunteer as volunteers
from models.activity import Rules
from models.points import Refused

from . import flows
from .context import Context, Services
from .registry import Invalid, action, choices, completer, validator
from .replies import Reply, Text
from .texts import say
from .volunteers import local_zone, notify, steward_of

SCENE_PREFIX = "act_"
SCENE_RE = re.compile(r"^act_(\d+)_(in|out)$")
ROSTER_PAGE = 30
SIGNUP_FLOW, CANCEL_FLOW, PUBLISH_FLOW = "activity_signup", "activity_cancel", "activity_publish"
TIME_RE = re.compile(r"^(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})[日号]?\s*"
                     r"(?:(上午|下午|晚上)\s*)?(\d{1,2})(?:[:：点时](\d{1,2})?分?)?$")


def rules(services: Services) -> Rules:
    """The configured rules of activities and points."""
    return Rules.from_settings(services.settings)


def scene(activity_id: int, direction: str) -> str:
    """The QR scene of an activity's check-in (`in`) or check-out (`out`) code."""
    return f"{SCENE_PREFIX}{activity_id}_{direction}"


def refused(exc: Refused, services: Services) -> Text:
    """A rule's refusal, worded kindly."""
    return Text(say("activity_refused", reason=exc.reason, tz=local_zone(services), **exc.detail))


# --- residents -------------------------------------------------------------------------

@action("activities.browse")
def browse(ctx: Context) -> Reply:
    """红管发布 → 活动报名: starts the sign-up flow, or says there is nothing to sign up for."""
    if not activities.upcoming(ctx.session, ctx.resident, ctx.now):
        return Text(say("activity_none"))
    return flows.start(ctx, ctx.services.menus.flows[SIGNUP_FLOW])


@choices("activities_open")
def open_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """Upcoming activities the resident may see, each with its time, place and free seats."""
    tz = local_zone(ctx.services)
    return [(str(a.id), say("activity_label", a=a, tz=tz,
                            left=a.capacity - activities.seats_taken(ctx.session, a.id)))
            for a in activities.upcoming(ctx.session, ctx.resident, ctx.now)]


@completer("activities.sign_up")
def sign_up(ctx: Context, answers: dict) -> Reply:
    """Takes a seat or a waitlist place."""
    try:
        signup = activities.sign_up(ctx.session, int(answers["activity"]), ctx.resident, ctx.now)
    except Refused as exc:
        return refused(exc, ctx.services)
    position = activities.waitlist_position(ctx.session, signup) if signup.status == "waitlisted" else 0
    return Text(say("activity_signed_up", s=signup, a=signup.activity, position=position,
                    tz=local_zone(ctx.services)))


@action("activities.cancel")
def cancel_start(ctx: Context) -> Reply:
    """取消报名: asks which sign-up to give up."""
    if not activities.my_signups(ctx.session, ctx.resident.id, ctx.now):
        return Text(say("activity_mine", rows=[], tz=local_zone(ctx.services)))
    return flows.start(ctx, ctx.services.menus.flows[CANCEL_FLOW])


@choices("my_signups")
def my_signup_choices(ctx: Context, answers: dict) -> list[tuple[str, str]]:
    """The resident's active sign-ups, to choose one to cancel."""
    tz = local_zone(ctx.services)
    return [(str(s.activity_id), say("activity_label", a=s.activity, tz=tz, left=None))
            for s in activities.my_signups(ctx.session, ctx.resident.id, ctx.now)]


def notify_promoted(session: Session, services: Services, signup: Signup) -> None:
    """Tells the first on the waitlist, by template message, that they now have a seat."""
    notify(session, services, signup.resident.openid, "activity", "activity_tpl_promoted",
           key=f"activity_promoted:{signup.id}:{int(signup.queued_at.timestamp())}",
           a=signup.activity, tz=local_zone(services))


def cancel_signup(session: Session, services: Services, activity_id: int, resident, now: datetime) -> Signup:
    """Cancels a sign-up and promotes (and tells) the first on the waitlist (chat and console)."""
    signup, promoted = activities.cancel(session, activity_id, resident, now)
    if promoted is not None:
        notify_promoted(session, services, promoted)
    return signup


@completer("activities.cancel")
def cancel(ctx: Context, answers: dict) -> Reply:
    """Gives up the chosen sign-up."""
    try:
        signup = cancel_signup(ctx.session, ctx.services, int(answers["activity"]), ctx.resident, ctx.now)
    except Refused as exc:
        return refused(exc, ctx.services)
    return Text(say("activity_cancelled", a=signup.activity))


@action("activities.mine")
def mine(ctx: Context) -> Reply:
    """我的活动: the resident's sign-ups, seats and waitlist places."""
    rows = [(s, activities.waitlist_position(ctx.session, s) if s.status == "waitlisted" else 0)
            for s in activities.my_signups(ctx.session, ctx.resident.id, ctx.now)]
    return Text(say("activity_mine", rows=rows, tz=local_zone(ctx.services)))


def scan(ctx: Context, scene_id: str) -> Reply:
    """A scan of an activity's check-in or check-out code; repeated scans change nothing."""
    match = SCENE_RE.match(scene_id)
    if match is None:
        return Text(say("activity_refused", reason="unknown_activity", number=scene_id))
    activity_id, direction = int(match.group(1)), match.group(2)
    return _mark(ctx, activity_id, ctx.resident.id, direction, None)


def _mark(ctx: Context, activity_id: int, resident_id: int, direction: str,
          steward: Steward | None) -> Reply:
    """Checks one person in or out and words the outcome for them."""
    r = rules(ctx.services)
    steward_id = steward.id if steward else None
    try:
        if direction == "in":
            signup, changed = activities.check_in(ctx.session, r, activity_id, resident_id, ctx.now, steward_id)
        else:
            signup, changed = activities.check_out(ctx.session, r, activity_id, resident_id, ctx.now,
                                                   steward_id)
    except Refused as exc:
        return refused(exc, ctx.services)
    return Text(say("activity_checked_" + direction, s=signup, a=signup.activity, again=not changed,
                    balance=points_ledger.balance(ctx.session, resident_id), tz=local_zone(ctx.services)))


# --- stewards --------------------------------------------------------------------------

def parse_local_time(text: str, now: datetime, services: Services) -> datetime:
    """Reads 12月5日 9:00, 2026-12-05 09:00 or 12/5 下午2点 as park time; a past date means next year."""
    match = TIME_RE.match(text.strip().replace("：", ":"))
    if match is None:
        raise Invalid(say("activity_hint_time"))
    year, month, day, half, hour, minute = match.groups()
    hour, minute = int(hour), int(minute or 0)
    if half in ("下午", "晚上") and hour < 12:
        hour += 12
    tz = local_zone(services)
    local_now = now.astimezone(tz)
    try:
        when = datetime(int(year or local_now.year), int(month), int(day), hour, minute, tzinfo=tz)
        if year is None and when < local_now:
            when = when.replace(year=when.year + 1)
    except ValueError:
        raise Invalid(say("activity_hint_time")) from None
    return when


@validator("activity_time")
def activity_time(ctx: Context, value: str) -> str:
    """A future time in park time, kept as ISO text in the answers."""
    when = parse_local_time(value, ctx.now, ctx.services)
    if when <= ctx.now:
        raise Invalid(say("activity_hint_time"))
    return when.isoformat()


@validator("positive_number")
def positive_number(ctx: Context, value: str) -> float:
    """A number above zero and at most 10000 (hours, seats, points)."""
    try:
        number = float(value.strip().rstrip("人个小时分位名"))
    except ValueError:
        raise Invalid(say("activity_hint_number")) from None
    if not 0 < number <= 10_000:
        raise Invalid(say("activity_hint_number"))
    return number


@action("activities.publish")
def publish_start(ctx: Context) -> Reply:
    """发布活动: stewards only."""
    if steward_of(ctx.session, ctx.resident.openid) is None:
        return Text(say("activity_stewards_only"))
    return flows.start(ctx, ctx.services.menus.flows[PUBLISH_FLOW])


@completer("activities.publish")
def publish(ctx: Context, answers: dict) -> Reply:
    """Publishes the activity the steward described."""
    steward = steward_of(ctx.session, ctx.resident.openid)
    if steward is None:
        return Text(say("activity_stewards_only"))
    starts_at = datetime.fromisoformat(answers["starts_at"])
    opens = answers.get("opens_at")
    try:
        act = activities.publish(
            ctx.session, rules(ctx.services), title=answers["title"], place=answers["place"],
            starts_at=starts_at, ends_at=starts_at + timedelta(hours=float(answers["hours"])),
            capacity=int(answers["capacity"]), now=ctx.now,
            points_per_hour=int(answers["points_per_hour"]) if answers.get("points_per_hour") else None,
            community_id=steward.community_id if answers["scope"] == "community" else None,
            volunteers_only=answers["audience"] == "volunteers",
            early_access_points=int(answers["early_points"]) if answers.get("early_points") else None,
            opens_at=datetime.fromisoformat(opens) if opens else None, steward_id=steward.id)
    except Refused as exc:
        return refused(exc, ctx.services)
    return Text(say("activity_published", a=act, tz=local_zone(ctx.services),
                    scene_in=scene(act.id, "in"), scene_out=scene(act.id, "out")))


def _steward_activity(ctx: Context, steward: Steward, number: str) -> Activity:
    """An activity the steward may manage: their community's, or park-wide."""
    act = ctx.session.get(Activity, int(number)) if number.isdigit() else None
    if act is None or act.community_id not in (None, steward.community_id):
        raise Refused("unknown_activity", number=number)
    return act


@action("activities.command")
def command(ctx: Context) -> Reply:
    """活动: stewards manage (发布 / 名单 / 签到 / 签退 / 补录); residents see the list."""
    steward = steward_of(ctx.session, ctx.resident.openid)
    if steward is None:
        return browse(ctx)
    words = ctx.text.split()
    verb, args = (words[1], words[2:]) if len(words) > 1 else ("", [])
    try:
        if verb == "发布":
            return flows.start(ctx, ctx.services.menus.flows[PUBLISH_FLOW])
        if verb == "名单" and args:
            act = _steward_activity(ctx, steward, args[0])
            rows = activities.roster(ctx.session, act.id)
            # A chat reply holds about 2,000 bytes: long rosters come in pages.
            page = max(1, int(args[1])) if len(args) > 1 and args[1].isdigit() else 1
            return Text(say("activity_roster", a=act, rows=rows[(page - 1) * ROSTER_PAGE:page * ROSTER_PAGE],
                            more=len(rows) - page * ROSTER_PAGE, next_page=page + 1,
                            tz=local_zone(ctx.services)))
        if verb in ("签到", "签退") and len(args) > 1:
            return _mark_many(ctx, steward, _steward_activity(ctx, steward, args[0]), args[1:],
                              "in" if verb == "签到" else "out")
        if verb == "补录" and len(args) == 3:
            return _manual_hours(ctx, steward, _steward_activity(ctx, steward, args[0]), args[1], args[2])
    except Refused as exc:
        return refused(exc, ctx.services)
    return Text(say("activity_command_help"))


def _signup_of(ctx: Context, act: Activity, number: str) -> Signup:
    """A sign-up of this activity by its number on the roster."""
    signup = ctx.session.get(Signup, int(number)) if number.isdigit() else None
    if signup is None or signup.activity_id != act.id:
        raise Refused("unknown_signup", number=number)
    return signup


def _mark_many(ctx: Context, steward: Steward, act: Activity, numbers: list[str], direction: str) -> Reply:
    """The steward checks people in or out by their roster numbers."""
    lines = []
    for number in numbers:
        try:
            signup = _signup_of(ctx, act, number)
        except Refused as exc:
            lines.append(refused(exc, ctx.services).content)
            continue
        reply = _mark(ctx, act.id, signup.resident_id, direction, steward)
        lines.append(say("activity_marked", number=number, name=signup.resident.masked_name,
                         outcome=reply.content))
    return Text("\n".join(lines))


def _manual_hours(ctx: Context, steward: Steward, act: Activity, number: str, hours: str) -> Reply:
    """Hours entered afterwards: recorded as service hours, earning no points."""
    signup = _signup_of(ctx, act, number)
    try:
        minutes = round(float(hours) * 60)
    except ValueError:
        raise Refused("bad_hours") from None
    volunteers.record_manual(ctx.session, signup.resident_id, minutes, steward, ctx.now,
                             activity_id=act.id)
    return Text(say("activity_manual_recorded", name=signup.resident.masked_name, hours=minutes / 60,
                    a=act))
