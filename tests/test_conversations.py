"""Reading ShareGPT files: formats, the loading rules, and bad input."""

import json
import re

import pytest
from conftest import conversation

from prefix_sharing.conversations import read_conversations
from prefix_sharing.errors import InputError

TWO = [
    conversation("a", ("human", "hi"), ("gpt", "hello")),
    conversation("b", ("human", "bye"), ("gpt", "see you")),
]


def texts(found):
    return [[(m.role, m.text) for m in c.messages] for c in found]


def test_json_array(write_array):
    found, report = read_conversations(write_array(TWO))
    assert texts(found) == [[("human", "hi"), ("gpt", "hello")],
                            [("human", "bye"), ("gpt", "see you")]]
    assert [c.id for c in found] == ["a", "b"]
    assert report.records_read == 2 and not report.cut_off


def test_json_lines_with_crlf_and_bom(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = "\r\n".join(json.dumps(r) for r in TWO) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    found, report = read_conversations(path)
    assert [c.id for c in found] == ["a", "b"]
    assert report.byte_order_mark


def test_cut_off_array_keeps_complete_records(write_array, caplog):
    path = write_array(TWO)
    text = path.read_text()
    path.write_text(text[: text.index("see you")])
    found, report = read_conversations(path)
    assert [c.id for c in found] == ["a"]
    assert report.cut_off
    assert "cut off inside record 1" in caplog.text


def test_unclosed_array_after_complete_record(write_array):
    path = write_array(TWO)
    path.write_text(path.read_text().rstrip().rstrip("]"))
    found, report = read_conversations(path)
    assert len(found) == 2 and report.cut_off


def test_stops_reading_at_the_limit(write_array):
    # A broken record after the limit is never reached.
    path = write_array(TWO)
    path.write_text(path.read_text().rstrip()[:-1] + ", {broken")
    found, report = read_conversations(path, limit=1)
    assert [c.id for c in found] == ["a"] and report.records_read == 1


def test_text_field_rules(write_array):
    record = {"id": "x", "conversations": [
        {"from": "human", "value": "", "text": "  from text  "},
        {"from": "gpt", "value": None, "markdown": "from markdown"},
        {"from": "gpt", "value": 42},
        {"from": "gpt", "value": ["a list"]},
        {"from": "gpt", "value": "   "},
        {"from": "bing", "value": "other role"},
    ]}
    found, report = read_conversations(write_array([record]))
    assert texts(found) == [[("human", "from text"), ("gpt", "from markdown"),
                             ("bing", "other role")]]
    assert report.messages_skipped == 3
    assert report.roles == {"human": 1, "gpt": 1, "bing": 1}


def test_empty_conversation_does_not_count_toward_limit(write_array):
    records = [conversation("empty", ("human", " ")), *TWO]
    found, report = read_conversations(write_array(records), limit=2)
    assert [c.id for c in found] == ["a", "b"]
    assert [c.index for c in found] == [0, 1]
    assert report.empty_conversations_skipped == 1


def test_line_separator_dropped_only_when_asked(write_array):
    path = write_array([conversation("a", ("human", "one\u2028two"))])
    kept, _ = read_conversations(path)
    dropped, report = read_conversations(path, drop_line_separators=True)
    assert kept[0].messages[0].text == "one\u2028two"
    assert dropped[0].messages[0].text == "onetwo"
    assert report.line_separators_removed == 1


def test_duplicate_ids_are_kept_and_counted(write_array):
    found, report = read_conversations(write_array([TWO[0], TWO[0]]))
    assert len(found) == 2 and report.duplicate_ids == 1


def test_large_message(write_array):
    big = "word " * 2_000_000  # 10 MB
    found, _ = read_conversations(write_array([conversation("big", ("human", big))]))
    assert len(found[0].messages[0].text) == len(big.strip())


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"hello", "not a ShareGPT file"),
        (b'"a string"', "not a ShareGPT file"),
        (b"[1, 2]", "record 0: expected a conversation object, found a number"),
        (b'[{"id": "q"}]', "record 0 (id 'q'): has no 'conversations' list"),
        (b'[{"id": "q", "conversations": {}}]',
         "record 0 (id 'q'): 'conversations' is an object, not a list"),
        (b'[{"id": "q", "conversations": ["hi"]}]',
         "record 0 (id 'q'): message 0 is a string, not an object"),
        (b'[{"id": "a", "conversations": []}, {"id": "b", "conversations": [}]',
         "record 1 (id 'b'): not valid JSON"),
        (b'[{"id": "a", "conversations": []} {"id": "b"}]',
         "record 1: expected ',' or ']'"),
    ],
)
def test_bad_files_name_the_file_and_record(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as error:
        read_conversations(path)
    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


def test_invalid_utf8_names_the_byte(tmp_path):
    content = b'[{"id": "a", "conversations": [{"from": "human", "value": "\xff"}]}]'
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"invalid UTF-8 at byte {content.index(255)}"):
        read_conversations(path)


@pytest.mark.parametrize("cut", [3, 20, 41, 60, 75])
def test_cut_anywhere_inside_the_second_record_keeps_the_first(write_array, cut):
    path = write_array(TWO)
    text = path.read_text()
    second = text.index('{', text.index('"b"') - 20)
    path.write_text(text[: second + cut])
    found, report = read_conversations(path)
    assert [c.id for c in found] == ["a"] and report.cut_off


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_conversations(tmp_path / "nope.json")
    with pytest.raises(InputError, match="is a folder"):
        read_conversations(tmp_path)


def test_invalid_utf8_names_the_record_that_holds_it(tmp_path):
    records = [conversation(f"r{i}", ("human", "x" * 500)) for i in range(3000)]
    text = json.dumps(records).encode()
    at = text.index(b'"value": "', text.index(b'"r2999"')) + 12
    path = tmp_path / "late.json"
    path.write_bytes(text[:at] + b"\xff" + text[at:])
    with pytest.raises(InputError) as error:
        read_conversations(path)
    assert f"record 2999 (id 'r2999'): invalid UTF-8 at byte {at}" in str(error.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[{"id": "a", "conversations": []}] trailing',
         "unexpected text after the closing ']'"),
        (b'[{"id": "a", "conversations": [{"from": "human", "value": "\\ud800"}]}]',
         "record 0 (id 'a'): message 0 holds a lone surrogate"),
        (b'[{"id": "\\udfff", "conversations": []}]', "the id holds a lone surrogate"),
        (b'[{"id": ' + b"9" * 5000 + b', "conversations": []}]',
         "record 0: not a usable value"),
        (b"[" * 100_000, "record 0: nested too deeply"),
    ],
)
def test_more_bad_files(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(expected)):
        read_conversations(path)
