"""Rendering: golden files, injection that stays inert, strict templates, inlined CSS, and the preview command.

Golden files: every sample of ``templates/samples/samples.json`` in every variant is compared byte for byte with
``tests/golden/``. After a deliberate template change, regenerate them with
``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/udfs/test_render.py`` and review the diff.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import udfs.render
from udfs.email_content import build_view_model
from udfs.preview import Preview, SampleSet, load_samples, main, render_samples
from udfs.render import TEMPLATE_DIR, HeaderInjection, RenderedEmail, Renderer, RenderError, UnknownTemplate

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
TEMPLATES = ("cart_reminder_1", "cart_reminder_2", "browse_abandonment", "high_intent")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def samples() -> SampleSet:
    return load_samples()


@pytest.fixture(scope="module")
def previews(renderer: Renderer, samples: SampleSet) -> dict[str, Preview]:
    return {preview.stem: preview for preview in render_samples(renderer, samples)}


def _model(samples: SampleSet, name: str, variant: str = "A", **trigger_changes: Any) -> dict[str, Any]:
    sample = next(s for s in samples.samples if s.name == name)
    trigger = {**sample.trigger, **trigger_changes}
    return build_view_model(trigger, sample.profile, samples.catalog, variant, samples.config, issued_at=1)


# --- golden files -----------------------------------------------------------------------------------------------


def _golden_names() -> list[str]:
    renderer = Renderer()
    return [
        f"{sample.name}.{variant}"
        for sample in load_samples().samples
        for variant in renderer.variants(sample.template)
    ]


@pytest.mark.parametrize("stem", _golden_names())
@pytest.mark.parametrize("part", ["html", "txt"])
def test_golden(previews: dict[str, Preview], stem: str, part: str) -> None:
    email = previews[stem].email
    _compare(GOLDEN / f"{stem}.{part}", email.html if part == "html" else email.text)


def test_golden_subjects(previews: dict[str, Preview]) -> None:
    subjects = {stem: preview.email.subject for stem, preview in previews.items()}
    _compare(GOLDEN / "subjects.json", json.dumps(subjects, indent=2, ensure_ascii=False) + "\n")


def test_no_stray_golden_files() -> None:
    expected = {f"{stem}.{part}" for stem in _golden_names() for part in ("html", "txt")} | {"subjects.json"}
    assert {path.name for path in GOLDEN.iterdir()} == expected


def _compare(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.exists(), f"{path} is missing; run with UPDATE_GOLDEN=1 to create it"
    assert actual.encode("utf-8") == path.read_bytes(), f"{path.name} differs; if intended, UPDATE_GOLDEN=1"


# --- what every email has ---------------------------------------------------------------------------------------


def test_the_shipped_templates_and_variants(renderer: Renderer) -> None:
    assert renderer.templates == TEMPLATES
    assert all(renderer.variants(name) == ("A", "B") for name in TEMPLATES)


def test_every_email_has_the_unsubscribe_link_and_the_address(previews: dict[str, Preview], samples: SampleSet) -> None:
    for preview in previews.values():
        email = preview.email
        assert email.unsubscribe_url.startswith("https://mail.shop.example/unsubscribe?token=")
        assert email.unsubscribe_url.replace("&", "&amp;") in email.html and email.unsubscribe_url in email.text
        assert samples.config.physical_address in email.html and samples.config.physical_address in email.text


def test_css_is_inlined(previews: dict[str, Preview]) -> None:
    html = previews["cart_reminder_1.A"].email.html
    assert re.search(r'<body style="[^"]*font-family: Helvetica', html)
    assert re.search(r'<a class="button" href="[^"]*" style="[^"]*background-color: #0b6bcb', html)
    assert re.search(r'<td class="footer" style="[^"]*font-size: 12px', html)
    assert "<link" not in html
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert all(style.strip().startswith("@media") for style in styles)  # only the responsive rules stay


def test_the_second_reminder_is_more_urgent_and_variant_b_moves_the_button(previews: dict[str, Preview]) -> None:
    first, a, b = (previews[s].email.html for s in ("cart_reminder_1.A", "cart_reminder_2.A", "cart_reminder_2.B"))
    assert "last reminder" in a and "last reminder" not in first
    assert b.index("Complete your order") < b.index("Cart total") < a.index("Complete your order")


def test_fallbacks_render(previews: dict[str, Preview]) -> None:
    email = previews["cart_reminder_1_fallbacks.A"].email
    assert "Hi there," in email.html and "Hi there," in email.text
    assert email.subject == "You left something in your cart"
    assert "You might also like" not in email.html and "You might also like" not in email.text
    assert "€24.00" in email.text


# --- injection --------------------------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


@pytest.mark.parametrize("name", [SCRIPT, '" onmouseover="alert(1)', "{{ 7*7 }}", "{% raw %}", "{{ ''.__class__ }}"])
def test_product_names_cannot_inject_markup_or_template_code(renderer: Renderer, samples: SampleSet, name: str) -> None:
    items = [{"product_id": "x", "name": name, "price": 1, "quantity": 1, "image_url": "https://i.example/x.png"}]
    model = _model(samples, "cart_reminder_1", "B", items=items)
    email = renderer.render("cart_reminder_1", model, "B")
    page = _Parsed(email.html)
    assert name in page.texts  # the name is text, as a browser or mail client parses it
    assert ("img", "alt", name) in page.attributes  # and a whole attribute value, unable to close it
    assert "script" not in page.tags and not any(attr.startswith("on") for _, attr, _ in page.attributes)
    assert f"- {name}: 1 x" in email.text  # plain text is never read as HTML: kept as typed
    assert email.subject == f"Your {name} is waiting in your cart"  # printed, never evaluated
    assert "49" not in email.subject and "class '" not in email.html


def test_a_first_name_with_a_header_is_not_used(renderer: Renderer, samples: SampleSet) -> None:
    sample = next(s for s in samples.samples if s.name == "cart_reminder_1")
    profile = {**sample.profile, "first_name": "Ann\r\nBcc: x@y"}
    model = build_view_model(sample.trigger, profile, samples.catalog, "A", samples.config, issued_at=1)
    email = renderer.render("cart_reminder_1", model, "A")
    assert email.subject == "You left something in your cart"
    assert "Bcc" not in email.html + email.text + email.subject


@pytest.mark.parametrize("bad", ["Ann\r\nBcc: x@y", "Ann\nBcc: x@y", "Ann\rX", "Ann\x00", "Ann\u2028X", "Ann\x85X"])
def test_a_subject_with_a_line_break_is_refused(renderer: Renderer, samples: SampleSet, bad: str) -> None:
    """A view model built elsewhere gets no free pass: the renderer refuses the header itself."""
    model = {**_model(samples, "cart_reminder_1"), "first_name": bad}
    with pytest.raises(HeaderInjection):
        renderer.render("cart_reminder_1", model, "A")
    assert issubclass(HeaderInjection, ValueError)


def test_product_names_with_line_breaks_reach_the_subject_on_one_line(renderer: Renderer, samples: SampleSet) -> None:
    items = [{"product_id": "x", "name": "Boot\r\nBcc: x@y", "price": 1, "quantity": 1}]
    email = renderer.render("cart_reminder_1", _model(samples, "cart_reminder_1", "B", items=items), "B")
    assert email.subject == "Your Boot Bcc: x@y is waiting in your cart"  # inert: one header line


def test_javascript_urls_never_reach_an_href(renderer: Renderer, samples: SampleSet) -> None:
    items = [{"product_id": "x", "name": "X", "price": 1, "quantity": 1, "url": "javascript:alert(1)"}]
    email = renderer.render("cart_reminder_1", _model(samples, "cart_reminder_1", items=items), "A")
    assert "javascript:" not in email.html and "javascript:" not in email.text


def test_the_sandbox_blocks_unsafe_template_code(tmp_path: Path, samples: SampleSet) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "high_intent.txt").write_text("{{ greeting.__class__.__mro__[1].__subclasses__() }}")
    renderer = Renderer(templates)
    with pytest.raises(RenderError, match="sandbox|unsafe|__class__"):
        renderer.render("high_intent", _model(samples, "high_intent"), "A")


def test_templates_cannot_change_the_data(tmp_path: Path, samples: SampleSet) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "high_intent.txt").write_text("{{ recommendations.append(1) }}")
    with pytest.raises(RenderError):
        Renderer(templates).render("high_intent", _model(samples, "high_intent"), "A")


# --- strictness -------------------------------------------------------------------------------------------------


def test_a_missing_variable_is_an_error_naming_it(renderer: Renderer, samples: SampleSet) -> None:
    model = _model(samples, "cart_reminder_1")
    del model["greeting"]
    with pytest.raises(RenderError, match="greeting"):
        renderer.render("cart_reminder_1", model, "A")


def test_none_is_never_printed(renderer: Renderer, samples: SampleSet) -> None:
    model = {**_model(samples, "cart_reminder_1"), "physical_address": None}
    with pytest.raises(RenderError, match="None"):
        renderer.render("cart_reminder_1", model, "A")


@pytest.mark.parametrize("name", ["cart_reminder_9", "../templates/base", "base", "_macros", "", None])
def test_unknown_templates(renderer: Renderer, samples: SampleSet, name: Any) -> None:
    with pytest.raises(UnknownTemplate, match="cart_reminder_1"):
        renderer.render(name, _model(samples, "cart_reminder_1"), "A")


def test_unknown_variant_and_a_model_built_for_another(renderer: Renderer, samples: SampleSet) -> None:
    with pytest.raises(UnknownTemplate, match="variant 'C'"):
        renderer.render("cart_reminder_1", _model(samples, "cart_reminder_1"), "C")
    with pytest.raises(RenderError, match="built for variant 'A'"):
        renderer.render("cart_reminder_1", _model(samples, "cart_reminder_1", "A"), "B")


@pytest.mark.parametrize(
    ("subjects", "message"),
    [
        ("[]", "must map"),
        ("Cart-1: {A: x}", "lowercase"),
        ("cart_reminder_1: x", "must map variants"),
        ("cart_reminder_1: {'A B': x}", "letters and digits"),
        ("cart_reminder_1: {A: ''}", "non-empty"),
    ],
)
def test_a_bad_subjects_file_fails_at_start(tmp_path: Path, subjects: str, message: str) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "subjects.yaml").write_text(subjects)
    with pytest.raises(ValueError, match=message):
        Renderer(templates)


def test_a_broken_or_missing_template_fails_at_start(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "high_intent.html").write_text("{% if %}")
    with pytest.raises(Exception, match="high_intent.html|Expected an expression"):
        Renderer(templates)
    (templates / "high_intent.html").unlink()
    with pytest.raises(Exception, match="high_intent.html"):
        Renderer(templates)


def test_rendering_is_deterministic(renderer: Renderer, samples: SampleSet) -> None:
    model = _model(samples, "high_intent")
    assert renderer.render("high_intent", model, "A") == renderer.render("high_intent", model, "A")


# --- the preview command ----------------------------------------------------------------------------------------


def test_preview_writes_every_template_and_variant_with_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    stems = _golden_names()
    assert {p.name for p in out.iterdir()} == {f"{s}.{x}" for s in stems for x in ("html", "txt")} | {"index.html"}
    index = (out / "index.html").read_text()
    assert all(f'href="{stem}.html"' in index and f'href="{stem}.txt"' in index for stem in stems)
    assert "You left something in your cart, Ann" in index
    assert (out / "cart_reminder_1.A.html").read_text() == (GOLDEN / "cart_reminder_1.A.html").read_text()
    assert str(out) in capsys.readouterr().out


def test_preview_escapes_subjects_in_its_index(tmp_path: Path) -> None:
    samples = json.loads((TEMPLATE_DIR / "samples" / "samples.json").read_text())
    samples["samples"][0]["trigger"]["items"][0]["name"] = SCRIPT
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(samples))
    assert main(["--out", str(tmp_path / "out"), "--samples", str(path)]) == 0
    index = (tmp_path / "out" / "index.html").read_text()
    assert "<script" not in index and "&lt;script&gt;" in index


def test_preview_refuses_a_template_without_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = json.loads((TEMPLATE_DIR / "samples" / "samples.json").read_text())
    samples["samples"] = [s for s in samples["samples"] if s["template"] != "high_intent"]
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(samples))
    assert main(["--out", str(tmp_path / "out"), "--samples", str(path)]) == 1
    assert "no sample for ['high_intent']" in capsys.readouterr().err


def test_all_lists_the_public_names() -> None:
    module = udfs.render
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isclass(value) and value.__module__ == module.__name__
    }
    assert set(module.__all__) == public | {"TEMPLATE_DIR"}
    assert RenderedEmail.__dataclass_fields__.keys() == {"subject", "html", "text", "unsubscribe_url"}


class _Parsed(HTMLParser):
    """Tags, attributes and text nodes as an HTML parser sees them: the test of escaping is the parse, not a string."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, attr, value) for attr, value in attrs]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def _copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, target)
    return target
