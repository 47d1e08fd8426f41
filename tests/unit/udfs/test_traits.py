"""Identify traits become profile fields; odd shapes are left out, never fatal."""

from __future__ import annotations

import json

from udfs.traits import profile_fields_from_traits


def test_reserved_traits_become_fields():
    fields = profile_fields_from_traits(
        {"type": "identify", "traits": {"email": " Ann@Shop.Example ", "first_name": "Ann", "lastName": "Lee"}}
    )
    assert fields["email"] == "ann@shop.example"
    assert (fields["first_name"], fields["last_name"]) == ("Ann", "Lee")
    assert json.loads(fields["traits"])["first_name"] == "Ann"


def test_name_falls_back_to_the_first_word_of_name():
    assert profile_fields_from_traits({"traits": {"name": "Bo Diddley"}})["first_name"] == "Bo"


def test_timezone_from_traits_or_device_context_must_be_a_real_zone():
    assert profile_fields_from_traits({"traits": {"timezone": "Asia/Tokyo"}})["timezone"] == "Asia/Tokyo"
    assert profile_fields_from_traits({"traits": {}, "context": {"timezone": "America/Denver"}})["timezone"] == (
        "America/Denver"
    )
    assert "timezone" not in profile_fields_from_traits({"traits": {"timezone": "Mars/Olympus"}})


def test_bad_shapes_are_left_out():
    fields = profile_fields_from_traits({"traits": {"email": "not-an-email", "first_name": 42}})
    assert "email" not in fields and "first_name" not in fields
    assert profile_fields_from_traits({"traits": "nope"}) == {"traits": "{}"}


def test_huge_traits_are_not_copied_whole():
    fields = profile_fields_from_traits({"traits": {"email": "a@b.co", "blob": "x" * 20_000}})
    assert fields["email"] == "a@b.co" and "traits" not in fields
