"""Generated demo requests per category, and how well triage does on a held-out part of them."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Estate, file_request
from models.open311 import Catalogue, load_catalogue
from models.timeline import SYSTEM

from . import triage

# Every fourth phrase, and every fourth subject × problem pairing, of a category is kept out of
# training: held-out requests are worded in ways the model never saw, as a new resident's are.
HELD_OUT_EVERY = 4


@dataclass(frozen=True)
class Example:
    """One generated request; `pattern` numbers the phrase or pairing it was made from."""

    text: str
    type: str
    category: str
    pattern: int
    whole_phrase: bool = False  # a hand-written sentence rather than a subject × problem pairing


def generate(catalogue: Catalogue | None = None, variants: int = 3, seed: int = 311) -> list[Example]:
    """Realistic Simplified-Chinese requests per category; the same seed gives the same set."""
    catalogue = catalogue or load_catalogue()
    pieces = catalogue.settings["demo"]
    rng = random.Random(seed)

    def wrap(core: str) -> str:
        """A core sentence as a resident might send it: greeting, place, duration, sign-off."""
        where = rng.choice(pieces["buildings"] + pieces["places"] + [""] * 4)
        since = rng.choice(pieces["since"] + [""] * 4)
        text = rng.choice(pieces["openers"]) + where + core + ("，" + since if since else "") + "。"
        return (text + rng.choice(pieces["closers"])).strip()

    out = []
    for service in catalogue.services:
        cores = [(p, True) for p in service.demo]
        cores += [(s + p, False) for s in service.subjects for p in service.problems]
        for n, (core, whole) in enumerate(cores):
            for _ in range(variants):
                out.append(Example(wrap(core), service.type, service.name, n, whole))
    return out


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """Training and held-out examples, split by the pattern they were made from."""
    train = [e for e in examples if e.pattern % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    test = [e for e in examples if e.pattern % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return train, test


@dataclass(frozen=True)
class Report:
    """Precision of triage on held-out requests."""

    method: str
    trained_on: int
    tested_on: int
    category_precision: float  # macro average over categories the method ever predicted
    category_accuracy: float   # share of held-out requests given the right category
    type_accuracy: float
    answered: float            # share of held-out requests given any suggestion
    phrase_accuracy: float     # right category on held-out hand-written sentences alone
    per_category: dict[str, float]


def _report(method: str, trained_on: int, test: list[Example], guesses: list[tuple[str | None, str | None]]
            ) -> Report:
    """Scores (type, category) guesses against the held-out truth."""
    right, predicted = Counter(), Counter()
    for example, (_type, category) in zip(test, guesses):
        if category is not None:
            predicted[category] += 1
            right[category] += category == example.category
    per_category = {c: right[c] / predicted[c] for c in sorted(predicted)}
    n = len(test) or 1
    phrases = [(e, g) for e, g in zip(test, guesses) if e.whole_phrase]
    return Report(method, trained_on, len(test),
                  sum(per_category.values()) / (len(per_category) or 1),
                  sum(g[1] == e.category for e, g in zip(test, guesses)) / n,
                  sum(g[0] == e.type for e, g in zip(test, guesses)) / n,
                  sum(g[1] is not None for g in guesses) / n,
                  sum(g[1] == e.category for e, g in phrases) / (len(phrases) or 1), per_category)


def evaluate(catalogue: Catalogue | None = None, variants: int = 3, seed: int = 311) -> list[Report]:
    """The classifier and the keyword rules, each scored on the same held-out split."""
    catalogue = catalogue or load_catalogue()
    train, test = split(generate(catalogue, variants, seed))
    model = triage.train([(e.text, e.type, e.category) for e in train], catalogue)
    reports = []
    if model is not None:
        guesses = []
        for e in test:
            category = model.predict(e.text)[0][0]
            guesses.append((model.types[category], category))
        reports.append(_report("classifier", model.size, test, guesses))
    rules = [triage.by_rules(e.text, catalogue) for e in test]
    reports.append(_report("keyword rules", 0, test, [(s.type, s.category) for s in rules]))
    return reports


def load_history(session: Session, now: datetime, variants: int = 1, seed: int = 311) -> int:
    """Files generated requests as closed history in the demo park, so the sandbox's triage learns."""
    estates = session.scalars(select(Estate).order_by(Estate.id)).all()
    if not estates:
        return 0
    rng = random.Random(seed)
    count = 0
    for example in generate(variants=variants, seed=seed):
        estate = rng.choice(estates)
        filed = now - timedelta(days=rng.randint(1, 300), minutes=rng.randint(0, 1440))
        req = file_request(session, SYSTEM, kind="help", description=example.text, estate_id=estate.id,
                           community_id=estate.community_id, created_at=filed, channel="visit")
        req.type, req.category, req.status = example.type, example.category, "closed"
        req.close_reason, req.closed_at, req.updated_at = "rated", filed + timedelta(days=2), filed + timedelta(days=2)
        count += 1
    session.flush()
    return count

