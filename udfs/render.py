"""Render a view model into an email: subject, HTML part with CSS inlined, plain-text part.

Safety rests on three rules, each enforced here rather than left to template authors:

- Data is only ever passed as variables, never put into template source, and the environments are Jinja's
  sandbox (:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`): text such as ``{{ 7*7 }}`` in a product name
  is printed as is, never run, and templates cannot reach Python internals or mutate the data.
- HTML templates autoescape, so ``<script>`` in data arrives as ``&lt;script&gt;``. The text part is plain
  text (no escaping needed; it is never read as HTML).
- The subject is a mail header: it renders without escaping and is refused (:class:`HeaderInjection`) if it holds
  a line break or any other control character, so no data can add a header.

Templates are strict: an undefined variable, or ``None`` printed, raises :class:`RenderError` instead of
sending "None" or a blank to a customer. CSS lives in ``email.css`` and is inlined into ``style`` attributes by
css-inline (remote stylesheets are never fetched); only ``@media`` rules stay in a ``<style>`` tag.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import jinja2
import yaml
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "TEMPLATE_DIR",
    "HeaderInjection",
    "RenderError",
    "RenderedEmail",
    "Renderer",
    "UnknownTemplate",
]

#: The templates shipped with the project (``templates/`` at the repository root).
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_SUBJECTS_FILE = "subjects.yaml"
_CSS_FILE = "email.css"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_VARIANT = re.compile(r"[A-Za-z0-9]+")
_MAX_SUBJECT_CHARS = 255


class RenderError(ValueError):
    """The view model does not fit the template (a missing variable, ``None`` printed, a refused subject)."""


class UnknownTemplate(RenderError):
    """No such template, or no subject for that variant; names the ones there are."""


class HeaderInjection(RenderError):
    """The rendered subject holds a line break or another control character, which could add a mail header."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One email, ready for delivery; ``unsubscribe_url`` is also for the ``List-Unsubscribe`` header."""

    subject: str
    html: str
    text: str
    unsubscribe_url: str


class Renderer:
    """Loads, compiles and checks every template once (a broken template fails at start, not at first send).

    Build one per process (in an operator's ``open()``); :meth:`render` is then cheap and keeps no state.

    :param template_dir: where ``subjects.yaml``, ``email.css`` and the ``<name>.html``/``<name>.txt`` pairs are.
    """

    def __init__(self, template_dir: Path | str = TEMPLATE_DIR) -> None:
        self.template_dir = Path(template_dir)
        loader = jinja2.FileSystemLoader(self.template_dir)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "finalize": _refuse_none,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        self._html = ImmutableSandboxedEnvironment(autoescape=True, **common)
        self._text = ImmutableSandboxedEnvironment(autoescape=False, **common)
        self._subject_env = ImmutableSandboxedEnvironment(
            autoescape=False, undefined=jinja2.StrictUndefined, finalize=_refuse_none
        )
        self._subjects = self._load_subjects()
        css = (self.template_dir / _CSS_FILE).read_text(encoding="utf-8")
        self._inliner = css_inline.CSSInliner(
            extra_css=css, load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=False
        )
        self._parts = {
            name: (self._html.get_template(f"{name}.html"), self._text.get_template(f"{name}.txt"))
            for name in self._subjects
        }

    @property
    def templates(self) -> tuple[str, ...]:
        """Every template name, in ``subjects.yaml`` order."""
        return tuple(self._subjects)

    def variants(self, template_name: str) -> tuple[str, ...]:
        """The A/B variants ``subjects.yaml`` has for a template."""
        return tuple(self._subjects_of(template_name))

    def render(self, template_name: str, view_model: Mapping[str, Any], variant: str) -> RenderedEmail:
        """Render one email.

        :param view_model: from :func:`udfs.email_content.build_view_model`; passed to the templates as variables.
        :param variant: picks the subject; the templates see it as ``variant`` too.
        :raises UnknownTemplate: no such template or variant.
        :raises HeaderInjection: the subject would carry a control character.
        :raises RenderError: the view model lacks a variable the template uses, or prints ``None``.
        """
        subjects = self._subjects_of(template_name)
        if variant not in subjects:
            raise UnknownTemplate(f"{template_name} has no variant {variant!r}; it has {sorted(subjects)}")
        if view_model.get("variant", variant) != variant:
            raise RenderError(f"the view model was built for variant {view_model['variant']!r}, not {variant!r}")
        html_template, text_template = self._parts[template_name]
        context = {**view_model, "variant": variant}
        subject = _checked_subject(_rendered(subjects[variant], context, f"{template_name} subject {variant}"))
        html = self._inliner.inline(_rendered(html_template, context, f"{template_name}.html"))
        text = _rendered(text_template, context, f"{template_name}.txt")
        return RenderedEmail(subject, html, text, str(view_model.get("unsubscribe_url", "")))

    def _subjects_of(self, template_name: str) -> dict[str, jinja2.Template]:
        subjects = self._subjects.get(template_name) if isinstance(template_name, str) else None
        if subjects is None:
            raise UnknownTemplate(f"no template {template_name!r}; there are {sorted(self._subjects)}")
        return subjects

    def _load_subjects(self) -> dict[str, dict[str, jinja2.Template]]:
        """``subjects.yaml``: ``template: {variant: subject}``; every name checked, every subject compiled."""
        path = self.template_dir / _SUBJECTS_FILE
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data:
            raise ValueError(f"{path}: must map template names to {{variant: subject}}")
        subjects: dict[str, dict[str, jinja2.Template]] = {}
        for name, variants in data.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError(f"{path}: template name {name!r} must be lowercase letters, digits and _")
            if not isinstance(variants, dict) or not variants:
                raise ValueError(f"{path}: {name} must map variants (A, B...) to subject lines")
            for variant, source in variants.items():
                if not isinstance(variant, str) or not _VARIANT.fullmatch(variant):
                    raise ValueError(f"{path}: {name}: variant {variant!r} must be letters and digits")
                if not isinstance(source, str) or not source.strip():
                    raise ValueError(f"{path}: {name}.{variant} must be a non-empty subject line")
            subjects[name] = {v: self._subject_env.from_string(src) for v, src in variants.items()}
        return subjects


def _rendered(template: jinja2.Template, context: Mapping[str, Any], what: str) -> str:
    """Render, translating Jinja's errors into :class:`RenderError` naming the template."""
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{what}: {exc} (the view model lacks it)") from exc
    except SecurityError as exc:
        raise RenderError(f"{what}: refused by the sandbox: {exc}") from exc
    except _NoneOutput as exc:
        raise RenderError(f"{what}: a variable printed None; guard it with {{% if %}}") from exc


def _checked_subject(subject: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in subject):
        raise HeaderInjection(f"the subject holds a line break or control character: {subject!r}")
    subject = subject.strip()
    if not subject:
        raise RenderError("the subject is empty")
    if len(subject) > _MAX_SUBJECT_CHARS:
        raise RenderError(f"the subject is longer than {_MAX_SUBJECT_CHARS} characters")
    return subject


class _NoneOutput(Exception):
    pass


def _refuse_none(value: Any) -> Any:
    """Jinja's ``finalize``: every ``{{ }}`` passes here, so "None" never reaches a customer."""
    if value is None:
        raise _NoneOutput
    return value
