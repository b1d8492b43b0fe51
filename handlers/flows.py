"""The flow engine: asks a flow's steps in order, honours 取消/返回/跳过, confirms, completes."""
from __future__ import annotations

import logging
import re
import unicodedata
from datetime import timedelta

from . import registry
from .context import Context
from .menus import Flow, Step
from .registry import Invalid
from .replies import Reply, Text
from .texts import say

logger = logging.getLogger(__name__)

CONFIRM = "__confirm__"
CANCEL_WORDS = {"取消", "退出", "不办了"}
BACK_WORDS = {"返回", "上一步"}
SKIP_WORDS = {"跳过", "略过", "没有", "无"}
YES_WORDS = {"1", "是", "确认", "提交", "确定", "好", "对"}
NO_WORDS = {"2", "否", "修改", "不对"}
DONE_WORDS = {"完成", "好了", "没有了", "就这些"}
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
WORDS_RE = re.compile(r"[\w\u4e00-\u9fff]")
CHINESE_NUMBERS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
                   "十": 10}


def active_flow(ctx: Context) -> Flow | None:
    """The flow the resident is in, if it still exists in menus.yaml."""
    conv = ctx.conversation
    if not conv.flow:
        return None
    flow = ctx.services.menus.flows.get(conv.flow)
    if flow is None or (conv.step != CONFIRM and conv.step not in {s.id for s in flow.steps}):
        # menus.yaml changed under the resident: start over rather than guess.
        conv.clear()
        return None
    return flow


def expire_if_idle(ctx: Context) -> str | None:
    """Clears a flow idle longer than the configured minutes; returns its title if so."""
    conv = ctx.conversation
    idle = timedelta(minutes=ctx.services.settings["app"]["flow_idle_minutes"])
    if conv.flow and conv.updated_at and ctx.now - conv.updated_at > idle:
        flow = ctx.services.menus.flows.get(conv.flow)
        conv.clear()
        return flow.title if flow else ""
    if conv.expired_notice and not conv.flow:
        # The housekeeping job cleared this flow while the resident was away: say so once.
        flow = ctx.services.menus.flows.get(conv.expired_notice)
        conv.expired_notice = None
        return flow.title if flow else ""
    return None


def start(ctx: Context, flow: Flow) -> Reply:
    """Begins a flow at its first step (after checking it may be started)."""
    if flow.requires_verified and not ctx.resident.is_verified:
        return Text(say("verify_first", title=flow.title))
    notes = [note for note in (hook(ctx, flow) for hook in registry.BEFORE_START) if note]
    conv = ctx.conversation
    conv.clear()
    conv.flow = flow.name
    conv.data = {}
    conv.history = []
    first = _next_step(ctx, flow, -1)
    if first is None:  # every step is conditional and none applies: go straight to the summary
        conv.step = CONFIRM
        return Text("\n\n".join([*notes, _summary(ctx, flow)]))
    conv.step = first.id
    return Text("\n\n".join([*notes, ask(ctx, flow, first)]))


def answers_of(flow: Flow, data: dict) -> dict:
    """The answers for templates: every step present, None where skipped or not asked."""
    return {**{s.id: None for s in flow.steps}, **data}


def _next_step(ctx: Context, flow: Flow, after: int) -> Step | None:
    """The first step after position `after` whose `when:` condition holds (or that has none)."""
    for step in flow.steps[after + 1:]:
        if step.when is None or step.when(answers=answers_of(flow, ctx.conversation.data),
                                          resident=ctx.resident):
            return step
    return None


def ask(ctx: Context, flow: Flow, step: Step, hint: str | None = None) -> str:
    """The question of a step, with its numbered choices and how to skip or cancel."""
    prompt = step.prompt.render(answers=answers_of(flow, ctx.conversation.data), resident=ctx.resident).strip()
    return say("step", prompt=prompt, hint=hint, choices=[label for _, label in choices_of(ctx, step)],
               optional=step.optional, first=not ctx.conversation.history, step_type=step.type,
               max_items=step.max_items)


def choices_of(ctx: Context, step: Step) -> list[tuple[str, str]]:
    """The step's choices, from menus.yaml or from a registered provider."""
    if step.choices_from:
        return list(registry.CHOICES[step.choices_from](ctx, ctx.conversation.data))
    return step.choices


def advance(ctx: Context, flow: Flow) -> Reply:
    """Takes the resident's message as the answer to the current step."""
    conv = ctx.conversation
    text = ctx.text
    if text in CANCEL_WORDS:
        conv.clear()
        return Text(say("cancelled", title=flow.title))
    if text in BACK_WORDS:
        return _back(ctx, flow)
    if conv.step == CONFIRM:
        return _confirm(ctx, flow, text)
    step = flow.step(conv.step)
    if text in SKIP_WORDS and step.type == "images" and conv.data.get(step.id):
        return _add_image(ctx, flow, step, "__done__")  # 跳过 after some photos keeps them
    if text in SKIP_WORDS and step.optional:
        return _store_and_next(ctx, flow, step, None)
    if text in SKIP_WORDS and text == "跳过":
        return Text(ask(ctx, flow, step, hint=say("hint_not_optional")))
    try:
        value = _parse(ctx, step)
        if step.validator:
            value = registry.VALIDATORS[step.validator](ctx, value)
    except Invalid as exc:
        return Text(ask(ctx, flow, step, hint=str(exc)))
    if step.type == "images":
        return _add_image(ctx, flow, step, value)
    return _store_and_next(ctx, flow, step, value)


def _store_and_next(ctx: Context, flow: Flow, step: Step, value) -> Reply:
    """Records an answer and moves to the next step or to the confirmation."""
    for hook in registry.ON_ANSWER:
        hook(ctx, flow, step)
    conv = ctx.conversation
    data = dict(conv.data)
    data[step.id] = value
    conv.data = data
    conv.history = [*conv.history, step.id]
    nxt = _next_step(ctx, flow, flow.index(step.id))
    if nxt is not None:
        conv.step = nxt.id
        return Text(ask(ctx, flow, nxt))
    conv.step = CONFIRM
    return Text(_summary(ctx, flow))


def _add_image(ctx: Context, flow: Flow, step: Step, value) -> Reply:
    """Collects images until the maximum or until the resident says 完成."""
    conv = ctx.conversation
    images = list(conv.data.get(step.id) or [])
    if value == "__done__":
        if not images and not step.optional:
            return Text(ask(ctx, flow, step, hint=say("hint_image_needed")))
        return _store_and_next(ctx, flow, step, images or None)
    images.append(value)
    if len(images) >= step.max_items:
        return _store_and_next(ctx, flow, step, images)
    conv.data = {**conv.data, step.id: images}
    return Text(say("image_received", count=len(images), remaining=step.max_items - len(images)))


def _summary(ctx: Context, flow: Flow) -> str:
    """The summary the resident confirms before anything is filed."""
    body = flow.summary.render(answers=answers_of(flow, ctx.conversation.data), resident=ctx.resident,
                               labels=_labels(ctx, flow)).strip() if flow.summary else ""
    return say("confirm", title=flow.title, body=body, suggestions=_suggestions(ctx, flow))


def _suggestions(ctx: Context, flow: Flow) -> list:
    """Answers from the handbook and announcements that may make filing unnecessary."""
    source = flow.options.get("suggest_from")
    if not source:
        return []
    value = ctx.conversation.data.get(source)
    if isinstance(value, dict):  # a voice answer: WeChat's recognition is the text
        value = value.get("recognition")
    if not value:
        return []
    from .search import suggestions
    return suggestions(ctx, str(value), limit=int(flow.options.get("suggest_limit", 3)))


def _labels(ctx: Context, flow: Flow) -> dict[str, str]:
    """Human labels of the chosen values, for summaries."""
    out = {}
    for step in flow.steps:
        if step.type == "choice":
            value = ctx.conversation.data.get(step.id)
            out[step.id] = next((label for v, label in choices_of(ctx, step) if v == value), "")
    return out


def _back(ctx: Context, flow: Flow) -> Reply:
    """Goes back one step (from the confirmation, to the last question)."""
    conv = ctx.conversation
    if not conv.history:
        return Text(ask(ctx, flow, flow.step(conv.step), hint=say("hint_first_step")))
    prev = conv.history[-1]
    conv.history = conv.history[:-1]
    data = dict(conv.data)
    data.pop(prev, None)
    if conv.step != CONFIRM:
        data.pop(conv.step, None)  # photos half-collected at the step being left
    conv.data = data
    conv.step = prev
    return Text(ask(ctx, flow, flow.step(prev)))


def _confirm(ctx: Context, flow: Flow, text: str) -> Reply:
    """Files the flow on 确认; 修改 goes back; anything else asks again."""
    if text in YES_WORDS:
        answers = dict(ctx.conversation.data)
        ctx.extra["labels"] = _labels(ctx, flow)
        try:
            reply = registry.COMPLETERS[flow.handler](ctx, answers)
        except Invalid as exc:
            return Text(str(exc) + "\n\n" + _summary(ctx, flow))
        ctx.conversation.clear()
        return reply
    if text in NO_WORDS:
        return _back(ctx, flow)
    return Text(_summary(ctx, flow) + "\n" + say("hint_confirm"))


def _parse(ctx: Context, step: Step):
    """Turns a message into the step's value, or raises Invalid with a kind hint."""
    mtype = ctx.message_type
    if step.type == "images":
        if mtype == "image":
            return {"media_id": ctx.message.media_id, "url": ctx.message.image}
        if ctx.text in DONE_WORDS:
            return "__done__"
        raise Invalid(say("hint_image"))
    if step.type == "location":
        if mtype == "location":
            lat, lng = ctx.message.location
            return {"lat": float(lat), "lng": float(lng), "label": ctx.message.label or ""}
        if mtype == "text" and ctx.text:
            return {"address": _checked_text(ctx.text, step)}
        raise Invalid(say("hint_location"))
    if step.type == "voice_or_text" and mtype == "voice":
        return {"voice_media_id": ctx.message.media_id,
                "recognition": getattr(ctx.message, "recognition", None) or ""}
    if mtype != "text" or not ctx.text:
        raise Invalid(say("hint_text_expected", got=mtype))
    if step.type == "choice":
        return _choose(ctx, step)
    if step.type == "phone":
        return normalise_mobile(ctx.text)
    return _checked_text(ctx.text, step)


def _checked_text(text: str, step: Step) -> str:
    """Checks free text against the step's length limits; emoji alone say nothing."""
    if not WORDS_RE.search(text):
        raise Invalid(say("hint_words_needed"))
    if len(text) < step.min_length:
        raise Invalid(say("hint_too_short", min=step.min_length))
    if len(text) > step.max_length:
        raise Invalid(say("hint_too_long", max=step.max_length, got=len(text)))
    return text


def _choose(ctx: Context, step: Step) -> str:
    """A number from the list or the words of a choice both select it."""
    options = choices_of(ctx, step)
    text = unicodedata.normalize("NFKC", ctx.text).strip().rstrip(".。、")
    number = int(text) if text.isdigit() else CHINESE_NUMBERS.get(text)
    if number is not None and 1 <= number <= len(options):
        return options[number - 1][0]
    for value, label in options:
        # "夜间" picks "夜间（19:00—次日7:30）": the words before a bracket are the choice's name.
        if text in (label, value, re.split(r"[（(]", label)[0].strip()):
            return value
    matches = [v for v, label in options if text and text in label]
    if len(matches) == 1:
        return matches[0]
    raise Invalid(say("hint_choice", count=len(options)))


def normalise_mobile(raw: str) -> str:
    """Accepts 138 1234 5678, 138-1234-5678 and +86 prefixes; refuses anything else."""
    digits = re.sub(r"[\s\-()（）]", "", unicodedata.normalize("NFKC", raw))
    digits = re.sub(r"^(\+?86)", "", digits) if len(digits) > 11 else digits
    if not MOBILE_RE.match(digits):
        raise Invalid(say("hint_mobile"))
    return digits
