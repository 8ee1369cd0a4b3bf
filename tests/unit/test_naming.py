from shared.naming import normalize_name, normalize_names, split_csv_names


def test_separators_case_and_width_collapse_to_one_form():
    forms = ["  Traffic_Light ", "traffic-light", "TRAFFIC  LIGHT", "ｔｒａｆｆｉｃ light", "traffic__-__light"]
    assert {normalize_name(f) for f in forms} == {"traffic light"}


def test_casefold_is_stronger_than_lower():
    assert normalize_name("Straße") == "strasse"


def test_empty_and_duplicates_are_dropped_in_first_seen_order():
    assert normalize_names(["Dog", " ", "cat", "DOG", "_"]) == ["dog", "cat"]


def test_csv_split():
    assert split_csv_names("cat, Dog,,cat,  hot_dog ") == ["cat", "dog", "hot dog"]
    assert split_csv_names(None) == []


def test_a_name_holding_a_comma_is_written_in_quotes_as_in_csv():
    """Label names may hold commas ("Cat, tabby"): unquoted, a filter on one split it in two and matched every cat."""
    from services.search.domain.params import parse_params

    assert split_csv_names('"Cat, Tabby", dog') == ["cat, tabby", "dog"]
    params = parse_params({"labels": '"Cat, Tabby"', "tags": '"a,b",c'}, default_limit=20, max_limit=100)
    assert params.lists["labels"] == ["cat, tabby"] and params.lists["tags"] == ["a,b", "c"]
    assert split_csv_names('say "hi", x') == ['say "hi"', "x"]  # a quote inside a value is a character like any


def test_control_characters_are_dropped_and_whitespace_ones_separate():
    assert normalize_name("a\x00b\x7fc\x9f") == "abc"
    assert normalize_name("cat\tand\ndog") == "cat and dog"


def test_a_file_name_keeps_its_last_segment_in_utf8_without_control_characters():
    from shared.naming import safe_file_name

    assert [safe_file_name(n) for n in ["../../a/b.jpg", "C:\\x\\y.png", "\udcff\udcfe.jpg", "a\r\nb\x85.jpg", "é.jpg"]] == [
        "b.jpg", "y.png", "\ufffd\ufffd.jpg", "ab.jpg", "é.jpg",
    ]
    assert [safe_file_name(n) for n in [None, "", " ", ".", "..", "a/.."]] == [None] * 6
    assert len(safe_file_name("n" * 400 + ".jpg")) == 255
