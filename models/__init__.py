"""Tables and the rules that keep them valid. Imports neither Flask nor wechatpy."""
from . import pii
from .base import Base, make_engine, make_session_factory, utcnow
from .content import Announcement, HandbookEntry
from .conversation import Conversation
from .consent import ConsentRecord, RetentionMark, RightsRequest
from .form import FormSubmission
from .media import MediaFile
from .organisation import Estate, Liaison, Organisation, Steward
from .outbox import OutboxMessage, enqueue
from .points import PointsEntry, Redemption, Reward
from .request import ServiceRequest, file_request
from .resident import Resident
from .timeline import TimelineEntry
from .schedule import JobRun, Notice
from .volunteer import ServiceRecord, Volunteer
from .activity import Activity, Signup
from .club import Club, ClubMember
from .apikey import ApiKey, ApiKeyUsage
from .duplicate import DuplicateLink
from .open311 import Open311Submission
from .wechat import AccessToken, ProcessedMessage, SandboxCall
from .user import ConsoleUser, LoginFailure
from .audit import AuditEntry
from .resource import Resource
from . import reporting, rollup  # the reporting indexes and the rollups belong to the schema

__all__ = [
    "pii", "Base", "make_engine", "make_session_factory", "utcnow",
    "Announcement", "HandbookEntry", "FormSubmission",
    "Conversation", "Estate", "Organisation", "OutboxMessage", "enqueue",
    "Liaison", "TimelineEntry", "ConsoleUser", "LoginFailure", "AuditEntry", "Resource",
    "PointsEntry", "Redemption", "Reward", "ServiceRecord", "Volunteer", "Activity", "Signup",
    "Club", "ClubMember",
    "ConsentRecord", "RightsRequest", "RetentionMark", "MediaFile",
    "Resident", "ServiceRequest", "Steward", "file_request", "AccessToken", "ProcessedMessage", "SandboxCall",
]
