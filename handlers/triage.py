"""Smart triage: a suggested type, category and handler for a request, and its likely duplicates.

Suggestions are shown to the steward with their confidence and never applied by themselves.
With enough closed, classified requests in the park the suggestion comes from a classifier
trained on them (jieba words, TF-IDF, logistic regression); before that, from the keyword
rules in triage.yaml.
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Organisation, ServiceRequest, duplicate, routing
from models import segmenter
from models.open311 import Catalogue, load_catalogue
from models.labels import label
from models.request import OPEN_STATUSES
from models.workflow import find_by_ref

from .context import Context, Services
from .texts import say

logger = logging.getLogger(__name__)
# Closed this way, a request's classification says nothing reliable about its text.
UNTRUSTED_CLOSES = ("not_our_remit", "withdrawn")
LEARNED_STATUSES = ("resolved", "rated", "closed")
_lock = threading.Lock()
_models: dict[str, tuple[int, "Classifier | None"]] = {}
_training: dict[str, threading.Thread] = {}
MIN_RETRAIN = 20  # new closed requests before the model is retrained, at the least
MAX_HISTORY = 20000  # the newest closed requests are enough to learn from


def words(text: str, catalogue: Catalogue | None = None) -> list[str]:
    """The words of a text that can tell one matter from another."""
    stop = set((catalogue or load_catalogue()).settings.get("stopwords") or ())
    out = []
    for word in segmenter.tokenizer().lcut(text or ""):
        word = word.strip()
        if word and word not in stop and any(ch.isalnum() for ch in word) and not word.isdigit():
            out.append(word)
    return out


@dataclass(frozen=True)
class Suggestion:
    """What triage proposes for one text; the steward decides."""

    type: str | None
    category: str | None
    confidence: float
    source: str  # "model" (learned from the park's requests), "rules" (keywords) or "none"
    basis: int = 0  # requests the model learned from
    handler: Organisation | None = None
    alternatives: tuple[tuple[str, float], ...] = ()

    @property
    def type_label(self) -> str:
        """政务类 / 民主自治类 / 市场服务类 / 公益类."""
        return label("request_type", self.type)

    @property
    def percent(self) -> int:
        """The confidence as a whole percentage."""
        return round(self.confidence * 100)


@dataclass
class Classifier:
    """A category model learned from examples, with each category's usual type."""

    pipeline: object
    types: dict[str, str]
    size: int
    categories: tuple[str, ...] = field(default_factory=tuple)

    def predict(self, text: str) -> list[tuple[str, float]]:
        """Categories for a text, most likely first, with probabilities."""
        probs = self.pipeline.predict_proba([text])[0]
        ranked = sorted(zip(self.pipeline.classes_, probs), key=lambda p: -p[1])
        return [(str(c), float(p)) for c, p in ranked]


def train(examples: list[tuple[str, str, str]], catalogue: Catalogue | None = None) -> Classifier | None:
    """Learns from (text, type, category) examples; None when there are too few to trust."""
    catalogue = catalogue or load_catalogue()
    settings = catalogue.settings
    per_category = Counter(category for _text, _type, category in examples)
    usable = [e for e in examples if per_category[e[2]] >= int(settings.get("min_per_category", 3))]
    if len(usable) < int(settings.get("min_history", 60)) or len({e[2] for e in usable}) < 2:
        return None
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def analyse(text: str) -> list[str]:
        """Words and adjacent word pairs: 电梯 and 电梯|坏 say more together."""
        ws = words(text, catalogue)
        return ws + [a + "|" + b for a, b in zip(ws, ws[1:])]

    pipeline = make_pipeline(TfidfVectorizer(analyzer=analyse, sublinear_tf=True),
                             LogisticRegression(C=10.0, solver="saga", max_iter=300))
    with warnings.catch_warnings():
        # saga stopping a little short of convergence still ranks categories well.
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit([e[0] for e in usable], [e[2] for e in usable])
    types: dict[str, Counter] = {}
    for _text, type_, category in usable:
        types.setdefault(category, Counter())[type_] += 1
    return Classifier(pipeline, {c: t.most_common(1)[0][0] for c, t in types.items()}, len(usable),
                      tuple(sorted(types)))


def history(session: Session) -> list[tuple[str, str, str]]:
    """The park's closed, classified requests as (text, type, category)."""
    rows = session.execute(select(ServiceRequest.description, ServiceRequest.type, ServiceRequest.category)
                           .where(*_learned()).order_by(ServiceRequest.id.desc()).limit(MAX_HISTORY))
    return [(d, t, c) for d, t, c in rows]


def _learned():
    """The filter for requests whose classification can be learned from."""
    return (ServiceRequest.status.in_(LEARNED_STATUSES), ServiceRequest.type.is_not(None),
            ServiceRequest.category.is_not(None),
            func.coalesce(ServiceRequest.close_reason, "").not_in(UNTRUSTED_CLOSES))


def model_for(session: Session, catalogue: Catalogue | None = None, wait: bool = False) -> Classifier | None:
    """The classifier of the park's history, or None (then the rules answer).

    Learning takes seconds on a large park, far beyond WeChat's five: unless `wait`, a missing
    or stale model is retrained in a background thread and the previous one (or the rules)
    answers meanwhile. A model is stale once the history grew or shrank by a tenth.
    """
    catalogue = catalogue or load_catalogue()
    count = session.scalar(select(func.count(ServiceRequest.id)).where(*_learned()))
    engine = session.get_bind()
    url = str(engine.url)
    with _lock:
        cached = _models.get(url)
    if cached is not None and abs(count - cached[0]) <= max(MIN_RETRAIN, count // 10):
        return cached[1]
    if count < int(catalogue.settings.get("min_history", 60)):
        return None
    if wait:  # in the caller's session: on SQLite a second one would wait for its lock
        return _keep(url, count, train(history(session), catalogue))
    with _lock:
        running = _training.get(url)
        if running is None or not running.is_alive():
            running = threading.Thread(target=_train_and_keep, args=(engine, url, catalogue),
                                       name="triage-training", daemon=True)
            _training[url] = running
            running.start()
    return cached[1] if cached else None


def _train_and_keep(engine, url: str, catalogue: Catalogue) -> Classifier | None:
    """Reads the history in its own session, trains, and keeps the model for this database."""
    try:
        with Session(engine) as session:
            count = session.scalar(select(func.count(ServiceRequest.id)).where(*_learned()))
            rows = history(session)
        model = train(rows, catalogue)
    except Exception:  # a background thread has no caller to tell; the rules keep answering
        logger.exception("triage: training failed")
        return None
    return _keep(url, count, model)


def _keep(url: str, count: int, model: Classifier | None) -> Classifier | None:
    """Keeps a freshly trained model for its database."""
    with _lock:
        _models[url] = (count, model)
    if model is not None:
        logger.info("triage: trained on %d requests in %d categories", model.size, len(model.categories))
    return model


def wait_for_training(timeout: float | None = None) -> None:
    """Waits for background training to finish (tests, and before a process exits)."""
    with _lock:
        threads = list(_training.values())
    for thread in threads:
        thread.join(timeout)


def forget_models() -> None:
    """Drops the trained models, so the next suggestion learns afresh (after a bulk import)."""
    wait_for_training()
    with _lock:
        _models.clear()
        _training.clear()


def by_rules(text: str, catalogue: Catalogue | None = None) -> Suggestion:
    """The keyword rules: the category whose keywords the text mentions most."""
    catalogue = catalogue or load_catalogue()
    scores = {}
    for service in catalogue.services:
        score = sum(len(k) for k in service.keywords if k in (text or ""))
        if score:
            scores[service.name] = score
    if not scores:
        return Suggestion(None, None, 0.0, "none")
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    total = sum(scores.values())
    best, best_score = ranked[0]
    # A lone match is a guess: one more unit in the denominator keeps it short of certainty.
    confidence = best_score / (total + 1)
    return Suggestion(catalogue.by_name(best).type, best, confidence, "rules",
                      alternatives=tuple((n, s / (total + 1)) for n, s in ranked[1:3]))


def suggest(session: Session, text: str, estate=None, community=None,
            catalogue: Catalogue | None = None) -> Suggestion:
    """Type, category and handler for a text, from the model when there is one, else the rules."""
    catalogue = catalogue or load_catalogue()
    model = model_for(session, catalogue)
    if model is not None:
        ranked = model.predict(text)
        category, confidence = ranked[0]
        found = Suggestion(model.types[category], category, confidence, "model", model.size,
                           alternatives=tuple(ranked[1:3]))
    else:
        found = by_rules(text, catalogue)
    if found.category is None:
        return found
    handler = _handler(session, found, estate, community)
    return Suggestion(found.type, found.category, found.confidence, found.source, found.basis, handler,
                      found.alternatives)


def _handler(session: Session, found: Suggestion, estate, community) -> Organisation | None:
    """The handler routing.yaml gives the suggested type and category in this estate."""
    probe = SimpleNamespace(type=found.type, category=found.category, estate=estate, community=community)
    try:
        return routing.suggest(session, _routing_rules(), probe).handler
    except routing.RoutingError:
        logger.exception("triage: routing.yaml cannot be read; no handler suggested")
        return None


@lru_cache(maxsize=1)
def _routing_rules() -> routing.Rules:
    """routing.yaml, read once per process (`org routing-check` checks it before it ships)."""
    return routing.load()


def suggest_for(session: Session, req: ServiceRequest) -> Suggestion:
    """The suggestion for a filed request (what the steward sees beside it)."""
    return suggest(session, req.description or "", req.estate, req.community)


# ---- duplicates -----------------------------------------------------------------------------

def similarity(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two word sets."""
    return len(a & b) / len(a | b) if a and b else 0.0


def similar_open(session: Session, req: ServiceRequest, catalogue: Catalogue | None = None
                 ) -> list[tuple[ServiceRequest, float]]:
    """Open requests of the same estate, filed within a few days, whose words overlap enough."""
    if req.estate_id is None:
        return []
    catalogue = catalogue or load_catalogue()
    settings = catalogue.settings
    days = timedelta(days=int(settings.get("duplicate_days", 3)))
    threshold = float(settings.get("duplicate_similarity", 0.3))
    others = session.scalars(select(ServiceRequest).where(
        ServiceRequest.estate_id == req.estate_id, ServiceRequest.id != req.id,
        ServiceRequest.status.in_(OPEN_STATUSES),
        ServiceRequest.created_at >= req.created_at - days, ServiceRequest.created_at <= req.created_at + days))
    mine = set(words(req.description, catalogue))
    found = []
    for other in others:
        score = similarity(mine, set(words(other.description, catalogue)))
        if score >= threshold:
            found.append((other, score))
    return sorted(found, key=lambda p: (-p[1], p[0].created_at))


def duplicate_groups(session: Session, community_id: int,
                     catalogue: Catalogue | None = None) -> list[list[ServiceRequest]]:
    """Groups of open requests in a community that look like one matter (oldest first in each)."""
    catalogue = catalogue or load_catalogue()
    settings = catalogue.settings
    days = timedelta(days=int(settings.get("duplicate_days", 3)))
    threshold = float(settings.get("duplicate_similarity", 0.3))
    reqs = session.scalars(select(ServiceRequest).where(
        ServiceRequest.community_id == community_id, ServiceRequest.status.in_(OPEN_STATUSES),
        ServiceRequest.estate_id.is_not(None)).order_by(ServiceRequest.created_at)).all()
    bags = {r.id: set(words(r.description, catalogue)) for r in reqs}
    parent = {r.id: r.id for r in reqs}

    def root(i: int) -> int:
        """Union-find root with path halving."""
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for n, a in enumerate(reqs):
        for b in reqs[n + 1:]:
            if b.created_at - a.created_at > days:
                break  # sorted by time: nothing later is close enough
            if a.estate_id == b.estate_id and similarity(bags[a.id], bags[b.id]) >= threshold:
                parent[root(b.id)] = root(a.id)
    groups: dict[int, list[ServiceRequest]] = {}
    for r in reqs:
        groups.setdefault(root(r.id), []).append(r)
    return [g for g in groups.values() if len(g) > 1]


# ---- what the steward sees, and merging ------------------------------------------------------

def hint(session: Session, req: ServiceRequest) -> str:
    """The triage lines under 查看 <编号>: the suggestion, likely duplicates, merge links."""
    primary = duplicate.primary_of(session, req.id)
    followers = duplicate.followers_of(session, req.id)
    suggestion = suggest_for(session, req) if req.status == "submitted" else None
    similar = similar_open(session, req) if req.is_open and primary is None else []
    similar = [(other, score) for other, score in similar
               if duplicate.primary_of(session, other.id) is None and other not in followers][:3]
    return say("triage_hint", req=req, suggestion=suggestion, similar=similar, primary=primary,
               followers=followers)


def merge(session: Session, services: Services, staff, primary: ServiceRequest,
          others: list[ServiceRequest], now: datetime) -> list[ServiceRequest]:
    """Merges requests into `primary` and brings each to the primary's step; returns them."""
    from . import stewarding
    for other in others:
        try:
            duplicate.link(session, primary, other, staff.label, now)
        except duplicate.MergeError as exc:
            raise stewarding.Refused(say("triage_merge_refused", code=exc.code, ref=exc.ref)) from None
        # Each follower walks the primary's steps so far, so its reporter hears what the primary's did.
        steps = []
        if primary.type and other.status == "submitted":
            steps.append(("classify", {"type": primary.type, "category": primary.category}))
        if primary.handler is not None and other.handler_id is None:
            steps.append(("route", {"handler": primary.handler, "deadline_days": primary.deadline_days,
                                    "note": say("triage_merged_note", ref=primary.ref)}))
        if primary.status == "answered" and primary.answer:
            steps.append(("answer", {"text": primary.answer}))
        for action, args in steps:
            stewarding.perform(session, services, staff, other, action, now, **args)
    return others


# Steps of a primary that its followers repeat; closing stays each request's own decision.
FOLLOWED_ACTIONS = ("classify", "route", "transfer", "escalate", "answer", "resolve")


def follow(session: Session, services: Services, staff, primary: ServiceRequest, action: str,
           now: datetime, args: dict) -> int:
    """Repeats a primary's step on its followers (with their own notices); returns how many."""
    if action not in FOLLOWED_ACTIONS:
        return 0
    from . import stewarding
    done = 0
    for follower in duplicate.followers_of(session, primary.id):
        try:
            stewarding.perform(session, services, staff, follower, action, now, **args)
            done += 1
        except stewarding.Refused:
            # A follower already past this step (e.g. answered on its own) keeps its course.
            logger.info("triage: %s not repeated on follower %s", action, follower.ref)
    return done


def cmd_merge(ctx: Context, staff, rest: str) -> str:
    """合并 <主编号> <编号> [<编号> …]: handle duplicates as one; every reporter is answered."""
    from . import stewarding
    refs = rest.replace("，", " ").replace(",", " ").split()
    if len(refs) < 2:
        raise stewarding.Refused(say("steward_usage", command="合并"))
    found = []
    for ref in refs:
        req = find_by_ref(ctx.session, ref)
        if req is None or not stewarding.may_see(staff, req):
            raise stewarding.Refused(say("steward_not_found", ref=ref))
        found.append(req)
    if staff.kind != "steward":
        raise stewarding.Refused(say("steward_not_allowed", ref=found[0].ref))
    merged = merge(ctx.session, ctx.services, staff, found[0], found[1:], ctx.now)
    return say("triage_merged", primary=found[0], merged=merged)
