"""Render every template in every A/B variant with sample data, to files a marketer can open before going live.

Run ``python -m udfs.preview --out preview/`` (or ``make preview``), then open ``preview/index.html``. The
samples (triggers, profiles, catalog, shop settings) are ``templates/samples/samples.json``; the golden-file
tests render the same samples, so what the preview shows is what the tests pin.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udfs.email_content import ContentConfig, Offer, build_view_model
from udfs.render import TEMPLATE_DIR, RenderedEmail, Renderer

__all__ = ["DEFAULT_SAMPLES", "Preview", "Sample", "SampleSet", "load_samples", "main", "render_samples", "write"]

DEFAULT_SAMPLES = TEMPLATE_DIR / "samples" / "samples.json"


@dataclass(frozen=True, slots=True)
class Sample:
    """One email to preview: a trigger and the profile it is sent with; ``name`` names the output files."""

    name: str
    template: str
    trigger: Mapping[str, Any]
    profile: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SampleSet:
    config: ContentConfig
    catalog: Mapping[str, Mapping[str, Any]]
    issued_at: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    """One rendered sample in one variant."""

    sample: Sample
    variant: str
    email: RenderedEmail

    @property
    def stem(self) -> str:
        return f"{self.sample.name}.{self.variant}"


def load_samples(path: Path = DEFAULT_SAMPLES) -> SampleSet:
    """Read a samples file (the shape of ``templates/samples/samples.json``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    raw_config = dict(data["config"])
    offer = raw_config.pop("offer", None)
    config = ContentConfig(
        **{**raw_config, "unsubscribe_secret": raw_config["unsubscribe_secret"].encode()},
        offer=Offer(**offer) if offer else None,
    )
    samples = tuple(Sample(s["name"], s["template"], s["trigger"], s["profile"]) for s in data["samples"])
    return SampleSet(config, data["catalog"], int(data["issued_at"]), samples)


def render_samples(renderer: Renderer, sample_set: SampleSet) -> list[Preview]:
    """Every sample in every variant of its template, in file order.

    :raises ValueError: a template has no sample, so it could go live unseen; or a sample names an unknown one.
    """
    unseen = set(renderer.templates) - {sample.template for sample in sample_set.samples}
    if unseen:
        raise ValueError(f"no sample for {sorted(unseen)}: add one to the samples file")
    previews = []
    for sample in sample_set.samples:
        for variant in renderer.variants(sample.template):
            model = build_view_model(
                sample.trigger,
                sample.profile,
                sample_set.catalog,
                variant,
                sample_set.config,
                issued_at=sample_set.issued_at,
            )
            previews.append(Preview(sample, variant, renderer.render(sample.template, model, variant)))
    return previews


def write(previews: Sequence[Preview], out_dir: Path) -> Path:
    """``<sample>.<variant>.html`` and ``.txt`` per preview, and an ``index.html`` linking them; returns the index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for preview in previews:
        (out_dir / f"{preview.stem}.html").write_text(preview.email.html, encoding="utf-8")
        (out_dir / f"{preview.stem}.txt").write_text(preview.email.text, encoding="utf-8")
        cells = (preview.sample.name, preview.sample.template, preview.variant, preview.email.subject)
        stem = html.escape(preview.stem)
        links = f'<a href="{stem}.html">HTML</a> <a href="{stem}.txt">text</a>'
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + f"<td>{links}</td></tr>")
    index = out_dir / "index.html"
    index.write_text(_INDEX.format(rows="\n".join(rows)), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m udfs.preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("preview"), help="output folder (default: preview/)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="samples file (default: %(default)s)")
    parser.add_argument("--templates", type=Path, default=TEMPLATE_DIR, help="template folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        previews = render_samples(Renderer(args.templates), load_samples(args.samples))
    except (ValueError, KeyError, OSError) as exc:
        print(f"preview failed: {exc}", file=sys.stderr)
        return 1
    index = write(previews, args.out)
    print(f"{len(previews)} emails ({2 * len(previews)} files) in {args.out}/; open {index.resolve().as_uri()}")
    return 0


_INDEX = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>cartpulse email preview</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
td, th {{ padding: 4px 12px; text-align: left; }}
tr:nth-child(even) {{ background: #f4f4f5; }}
</style>
</head>
<body>
<h1>Email preview</h1>
<p>Sample data: templates/samples/samples.json. Images point at the sample shop and may not load.</p>
<table>
<tr><th>sample</th><th>template</th><th>variant</th><th>subject</th><th>files</th></tr>
{rows}
</table>
</body>
</html>
"""

if __name__ == "__main__":
    sys.exit(main())
