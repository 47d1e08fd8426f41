"""What an email says, as a plain dict (the view model): templates only format it, so this is where the logic lives.

:func:`build_view_model` takes a trigger (:class:`udfs.cart.AbandonmentTrigger` or
:class:`udfs.intent.BrowseTrigger`, as the dict off ``email.triggers``), the person's profile hash as Redis holds it
(read by :mod:`udfs.profile_fields`), an optional product catalog, the A/B variant and the shop's
:class:`ContentConfig`. Every field it reads is checked by :mod:`udfs.content_fields`: a missing or malformed one
raises :class:`InvalidContent` naming it, which dead-letters the trigger with its field.

Fallbacks, not errors, for what an email can do without: no first name gives "Hi there,"; a product name missing
gives the catalog's, else "Your item"; a URL that is not http(s) after resolving against the shop (``javascript:``,
``data:``) is dropped (the link falls back to the cart or shop, the image is left out); no recommendation left
gives an empty list.

Money is formatted by :func:`udfs.money.format_money`; cart amounts are rounded per line, and the cart total is
the sum of the lines shown, so the email adds up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from udfs import content_fields, profile_fields
from udfs.content_fields import InvalidContent
from udfs.money import format_money, minor_units, round_half_up
from udfs.unsubscribe import MIN_SECRET_BYTES, sign, unsubscribe_url

__all__ = [
    "BROWSE_TEMPLATES",
    "FALLBACK_GREETING",
    "ContentConfig",
    "InvalidContent",
    "Offer",
    "ViewModel",
    "build_view_model",
    "format_money",
    "template_for",
]

#: A view model: a plain, JSON-safe dict; the keys are listed in README.md, "Templates".
ViewModel = dict[str, Any]

FALLBACK_GREETING = "Hi there,"
#: Browse triggers name no template: the trigger type is the template.
BROWSE_TEMPLATES: frozenset[str] = frozenset({"browse_abandonment", "high_intent"})
_CART = "cart_abandonment"


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The incentive a high-intent email shows, e.g. ``Offer(code="WELCOME10", description="10% off today")``."""

    code: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentConfig:
    """The shop's settings every email shares; built once from config.

    :param shop_url: the shop's home; relative product URLs are resolved against it.
    :param cart_url: the cart page, the "return to your cart" link.
    :param cart_restore_url: a link that restores a cart on any device, with a ``{cart_id}`` placeholder; used
        instead of ``cart_url`` when the trigger has a cart id. Default none.
    :param category_url: a category page with a ``{category}`` placeholder; default none (links go to the shop).
    :param unsubscribe_base_url: the endpoint that honours the signed token (``?token=`` is added).
    :param unsubscribe_secret: the HMAC key, at least 32 bytes; never printed.
    :param physical_address: the postal address the footer must show (CAN-SPAM and its kin).
    :param currency: the catalog's currency, for recommendation prices and browse emails. Default ``USD``.
    :param offer: what a high-intent email offers; default none (the email invites without a code).
    :param utm_source: ``utm_source`` added to shop links (with medium ``email``, campaign the template,
        content the variant); ``None`` adds none. Default ``cartpulse``.
    :param max_recommendations: at most this many recommended products. Default 3.
    """

    shop_name: str
    shop_url: str
    cart_url: str
    unsubscribe_base_url: str
    unsubscribe_secret: bytes = field(repr=False)
    physical_address: str
    cart_restore_url: str | None = None
    category_url: str | None = None
    currency: str = "USD"
    offer: Offer | None = None
    utm_source: str | None = "cartpulse"
    max_recommendations: int = 3

    def __post_init__(self) -> None:
        for name in ("shop_url", "cart_url", "unsubscribe_base_url", "cart_restore_url", "category_url"):
            value = getattr(self, name)
            if value is not None and content_fields.absolute_http(value) is None:
                raise ValueError(f"ContentConfig.{name} must be an absolute http(s) URL, got {value!r}")
        for name in ("shop_name", "physical_address"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"ContentConfig.{name} must be a non-empty string")
        if not isinstance(self.unsubscribe_secret, bytes) or len(self.unsubscribe_secret) < MIN_SECRET_BYTES:
            raise ValueError(f"ContentConfig.unsubscribe_secret must be at least {MIN_SECRET_BYTES} bytes")
        if content_fields.currency(self.currency, "ContentConfig.currency") != self.currency:
            raise ValueError(f"ContentConfig.currency must be an ISO 4217 code, got {self.currency!r}")
        if not isinstance(self.max_recommendations, int) or self.max_recommendations < 0:
            raise ValueError("ContentConfig.max_recommendations must be an integer >= 0")


def template_for(trigger: Mapping[str, Any]) -> str:
    """The template a trigger asks for: a cart trigger names it (``cart_reminder_1``), a browse trigger is one."""
    kind = content_fields.text(trigger, "trigger_type")
    if kind == _CART:
        return content_fields.text(trigger, "template")
    if kind in BROWSE_TEMPLATES:
        return kind
    raise InvalidContent("trigger.trigger_type", f"must be one of {sorted(BROWSE_TEMPLATES | {_CART})}, got {kind!r}")


def build_view_model(
    trigger: Mapping[str, Any],
    profile: Mapping[str, str],
    catalog: Mapping[str, Mapping[str, Any]],
    variant: str,
    config: ContentConfig,
    *,
    issued_at: int,
) -> ViewModel:
    """The view model of one email; every key is always there (``None`` or ``[]`` when empty), for StrictUndefined.

    :param trigger: the trigger's dict (``to_dict()`` or the parsed JSON off ``email.triggers``).
    :param profile: the person's profile hash, values as stored (strings; JSON for ``cart``, ``recently_viewed``,
        ``top_categories``, ``traits``). ``email`` (or ``traits.email``) is required: the unsubscribe link is
        signed for it; ``first_name`` (or ``traits.first_name``/``traits.firstName``) is optional.
    :param catalog: product id -> ``{name, price, image_url, url, category}``, for names and images of
        recommended and browsed products; may be empty.
    :param variant: the A/B variant (``"A"``); chooses the subject, and the templates may branch on it.
    :param issued_at: epoch seconds the unsubscribe token is issued at (the send time).
    :raises InvalidContent: naming the first missing or malformed input field.
    """
    if not isinstance(trigger, Mapping):
        raise InvalidContent("trigger", "must be an object")
    if not isinstance(profile, Mapping):
        raise InvalidContent("profile", "must be a hash of strings")
    if not isinstance(variant, str) or not (variant.isascii() and variant.isalnum()):
        raise InvalidContent("variant", f"must be a non-empty alphanumeric string, got {variant!r}")
    template = template_for(trigger)
    person_id = content_fields.text(trigger, "person_id")
    is_cart = trigger["trigger_type"] == _CART
    email = profile_fields.email(profile)
    first_name = profile_fields.first_name(profile)
    links = _Links(config, template, variant)

    currency = content_fields.currency(trigger.get("currency"), "trigger.currency") if is_cart else config.currency
    cart_id = content_fields.optional_text(trigger, "cart_id") if is_cart else None
    items, total = _cart_items(trigger, catalog, currency, links.cart(cart_id), links) if is_cart else ([], None)
    in_cart = {item["product_id"] for item in items} if is_cart else profile_fields.profile_cart_ids(profile)
    product_id = None if is_cart else content_fields.optional_id(trigger, "product_id")
    category = None if is_cart else (content_fields.clean(content_fields.optional_text(trigger, "category")) or None)
    product = None
    if product_id is not None and product_id in catalog:
        product = _catalog_product(catalog, product_id, config.currency, links)
    viewed = profile_fields.json_field(profile, "recently_viewed", list)
    viewed = content_fields.id_list(viewed, "profile.recently_viewed") if viewed is not None else []
    if not viewed and not is_cart:  # the profile may lag the session that fired the trigger
        viewed = content_fields.id_list(trigger.get("recently_viewed") or [], "trigger.recently_viewed")
    categories = content_fields.id_list(
        profile_fields.json_field(profile, "top_categories", list) or [], "profile.top_categories"
    )
    token = sign(person_id, email, config.unsubscribe_secret, issued_at)
    return {
        "template": template,
        "variant": variant,
        "trigger_type": trigger["trigger_type"],
        "trigger_id": content_fields.text(trigger, "trigger_id"),
        "person_id": person_id,
        "reminder_index": content_fields.optional_int(trigger, "reminder_index") if is_cart else None,
        "email": email,
        "first_name": first_name,
        "greeting": f"Hi {first_name}," if first_name else FALLBACK_GREETING,
        "currency": currency,
        "items": items,
        "item_count": sum(item["quantity"] for item in items),
        "cart_total_display": format_money(total, currency) if total is not None else None,
        "cart_url": links.cart(cart_id),
        "product": product,
        "category": category,
        "category_url": links.category(category) if category else None,
        "recommendations": _recommendations(
            catalog,
            viewed=viewed,
            categories=[category, *categories] if category else categories,
            exclude=in_cart | ({product_id} if product_id else set()),
            config=config,
            links=links,
        ),
        "offer": {"code": config.offer.code, "description": config.offer.description} if config.offer else None,
        "shop_name": config.shop_name,
        "shop_url": links.shop(),
        "physical_address": config.physical_address,
        "unsubscribe_url": unsubscribe_url(config.unsubscribe_base_url, token),
    }


class _Links:
    """Every shop link of one email, made safe (http(s) only) and tagged with UTM parameters."""

    def __init__(self, config: ContentConfig, template: str, variant: str) -> None:
        self._config = config
        source = config.utm_source
        self._utm: list[tuple[str, str]] = (
            [("utm_source", source), ("utm_medium", "email"), ("utm_campaign", template), ("utm_content", variant)]
            if source
            else []
        )

    def track(self, url: str) -> str:
        if not self._utm:
            return url
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        present = {key for key, _ in query}
        query += [(key, value) for key, value in self._utm if key not in present]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def shop(self) -> str:
        return self.track(self._config.shop_url)

    def product(self, url: str | None) -> str | None:
        """An item's own link, resolved against the shop; ``None`` when absent or not http(s)."""
        safe = content_fields.absolute_http(urljoin(self._config.shop_url, url)) if url else None
        return self.track(safe) if safe else None

    def image(self, url: str | None) -> str | None:
        return content_fields.absolute_http(urljoin(self._config.shop_url, url)) if url else None

    def cart(self, cart_id: str | None) -> str:
        restore = self._config.cart_restore_url
        if restore and cart_id:
            return self.track(restore.replace("{cart_id}", quote(cart_id, safe="")))
        return self.track(self._config.cart_url)

    def category(self, category: str) -> str:
        pattern = self._config.category_url
        url = pattern.replace("{category}", quote(category, safe="")) if pattern else self._config.shop_url
        return self.track(url)


def _cart_items(
    trigger: Mapping[str, Any], catalog: Mapping[str, Mapping[str, Any]], currency: str, cart_url: str, links: _Links
) -> tuple[list[dict[str, Any]], Decimal | None]:
    """The cart's lines as shown, and their total: the sum of the rounded line totals, so the email adds up.

    A line whose price the cart does not know (``null``) is shown without a price or line total, and then the
    cart has no total either: one that left the line out would understate the cart.
    """
    raw = trigger.get("items")
    if not isinstance(raw, list) or not raw:
        raise InvalidContent.expected("trigger.items", "a non-empty array", raw)
    digits = minor_units(currency)
    items: list[dict[str, Any]] = []
    total: Decimal | None = Decimal(0)
    for position, line in enumerate(raw):
        where = f"trigger.items[{position}]"
        if not isinstance(line, Mapping):
            raise InvalidContent.expected(where, "an object", line)
        product_id = content_fields.required_id(line.get("product_id"), f"{where}.product_id")
        known = _catalog_fields(catalog, product_id)
        price = content_fields.optional_price(line.get("price"), f"{where}.price")
        price = round_half_up(price, digits) if price is not None else None
        quantity = line.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise InvalidContent.expected(f"{where}.quantity", "a positive integer", quantity)
        line_total = price * quantity if price is not None else None
        total = total + line_total if total is not None and line_total is not None else None
        name = (
            content_fields.clean(content_fields.optional_str(line.get("name"), f"{where}.name"))
            or content_fields.clean(known["name"])
            or "Your item"
        )
        image = links.image(
            content_fields.optional_str(line.get("image_url"), f"{where}.image_url") or known["image_url"]
        )
        url = links.product(content_fields.optional_str(line.get("url"), f"{where}.url") or known["url"])
        items.append(
            {
                "product_id": product_id,
                "name": name,
                "image_url": image,
                "url": url or cart_url,
                "price_display": format_money(price, currency) if price is not None else None,
                "quantity": quantity,
                "line_total_display": format_money(line_total, currency) if line_total is not None else None,
            }
        )
    return items, total


def _recommendations(
    catalog: Mapping[str, Mapping[str, Any]],
    *,
    viewed: list[str],
    categories: list[str],
    exclude: set[str],
    config: ContentConfig,
    links: _Links,
) -> list[dict[str, Any]]:
    """Recently viewed products first, then the catalog's products in the person's top categories; only products
    the catalog knows (a recommendation needs a name), none already in the cart or featured."""
    picked: list[dict[str, Any]] = []
    seen = set(exclude)
    by_category = (pid for category in categories for pid, e in catalog.items() if _category_of(e) == category)
    for product_id in _chain(viewed, by_category):
        if len(picked) >= config.max_recommendations:
            break
        if product_id in seen or product_id not in catalog:
            continue
        seen.add(product_id)
        picked.append(_catalog_product(catalog, product_id, config.currency, links))
    return picked


def _catalog_product(
    catalog: Mapping[str, Mapping[str, Any]], product_id: str, currency: str, links: _Links
) -> dict[str, Any]:
    """A product the catalog knows, as the catalog describes it; a recommendation or a featured product."""
    known = _catalog_fields(catalog, product_id)
    name = content_fields.clean(known["name"])
    if not name:
        raise InvalidContent(f"catalog[{product_id!r}].name", "missing")
    price = known["price"]
    return {
        "product_id": product_id,
        "name": name,
        "image_url": links.image(known["image_url"]),
        "url": links.product(known["url"]) or links.shop(),
        "price_display": format_money(price, currency) if price is not None else None,
    }


def _catalog_fields(catalog: Mapping[str, Mapping[str, Any]], product_id: str) -> dict[str, Any]:
    """The catalog's name, price, image and URL of a product, checked; all ``None`` for an unknown product."""
    where = f"catalog[{product_id!r}]"
    entry = catalog.get(product_id, {})
    if not isinstance(entry, Mapping):
        raise InvalidContent.expected(where, "an object", entry)
    price = entry.get("price")
    return {
        "name": content_fields.optional_str(entry.get("name"), f"{where}.name"),
        "price": content_fields.price(price, f"{where}.price") if price is not None else None,
        "image_url": content_fields.optional_str(entry.get("image_url"), f"{where}.image_url"),
        "url": content_fields.optional_str(entry.get("url"), f"{where}.url"),
    }


def _category_of(entry: Any) -> str | None:
    return entry.get("category") if isinstance(entry, Mapping) else None


def _chain(*iterables: Iterable[str]) -> Iterable[str]:
    for iterable in iterables:
        yield from iterable
