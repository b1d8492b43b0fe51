"""Resident-facing wording: Jinja2 templates under templates/replies, and admin-edited snippets."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from models import labels

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "replies"


@lru_cache(maxsize=1)
def _files() -> Environment:
    """The environment for the shipped reply templates, built once per process."""
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
                      autoescape=False, auto_reload=False)  # shipped files: they change with a restart
    labels.add_to(env)
    return env


@lru_cache(maxsize=1)
def sandboxed() -> SandboxedEnvironment:
    """The environment for wording an admin writes in menus.yaml."""
    return SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                autoescape=False)


def say(template: str, /, **context) -> str:
    """Renders templates/replies/<template>.txt and strips the trailing blank."""
    return _files().get_template(f"{template}.txt").render(**context).strip()


def compile_snippet(source: str) -> Template:
    """Compiles admin wording; raises jinja2.TemplateSyntaxError on a mistake."""
    return sandboxed().from_string(source)


def compile_expression(source: str):
    """Compiles an admin condition (e.g. `not resident.estate_id`); raises TemplateSyntaxError."""
    return sandboxed().compile_expression(source)
