from admin.suppressions import read_addresses


def test_csv_with_an_email_column():
    report = read_addresses("name,email\nAnn,Ann@Example.com\nBo,bo@example.org\n")
    assert report.addresses == ["ann@example.com", "bo@example.org"] and report.rejected == []


def test_plain_lines_and_bad_lines_are_named_by_number():
    report = read_addresses("a@b.co\n\nnot an address\nc@d.io\n")
    assert report.addresses == ["a@b.co", "c@d.io"]
    assert report.rejected == [(3, "not an address")]
