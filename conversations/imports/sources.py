"""An uploaded file as the conversations it holds: a bare JSON file, or the conversations*.json of a ZIP.

ChatGPT mails its data export as a ZIP holding `conversations.json` (newer exports split it into
`conversations-000.json`, `conversations-001.json` ...), next to images and other files, which are ignored.
Our own exports are JSON: one conversation object, or a list of them.

Hostile files are refused before anything is imported, with a message that says why:
- a ZIP is read as streams with zipfile: nothing is ever extracted to disk, and a member whose name is
  absolute or climbs out with `..` gets the whole archive refused;
- a ZIP bomb is refused from the sizes the archive declares, before inflating anything (the total of the
  members to read, and each one's compression ratio), and bytes are counted again while reading, so an
  archive that lies about its sizes stops at the caps too (zipfile also stops at the declared size and
  checks the CRC);
- invalid JSON is reported with the file's name (the member's, in a ZIP) and the line and column;
- every document is read once to count its conversations (that pass finds invalid JSON and the wrong
  shape, so a broken file imports nothing), then again to import them.
"""

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from .jsonstream import ItemTooLarge, JSONError, JSONItems, NotAListOrObject
from .parsed import ImportRefused, Limits

CONVERSATIONS_FILE = re.compile(r"^conversations(?:-(\d+))?\.json$")
# The JSON decoder's reasons (and jsonstream's own), marked for translation; their English is the decoder's.
JSON_REASONS = {
    "Expecting value": _lazy("Expecting value"),
    "Expecting ',' delimiter": _lazy("Expecting ',' delimiter"),
    "Expecting ':' delimiter": _lazy("Expecting ':' delimiter"),
    "Expecting property name enclosed in double quotes": _lazy("Expecting property name enclosed in double quotes"),
    "Unterminated string starting at": _lazy("Unterminated string starting at"),
    "Invalid control character at": _lazy("Invalid control character at"),
    "Invalid \\escape": _lazy("Invalid \\escape"),
    "Invalid \\uXXXX escape": _lazy("Invalid \\uXXXX escape"),
    "Illegal trailing comma before end of object": _lazy("Illegal trailing comma before end of object"),
    "Illegal trailing comma before end of array": _lazy("Illegal trailing comma before end of array"),
    "Extra data": _lazy("Extra data"),
    "Nested too deeply": _lazy("Nested too deeply"),
    "A number too long": _lazy("A number too long"),
}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Ratios are judged only on members this big: a small file may compress well and still be harmless.
_RATIO_FLOOR = 1 << 20
_READ_BYTES = 1 << 20


class Source:
    """The JSON documents of one saved upload (`path`; `name` is what the person called it), opened afresh
    for each pass. Opening checks the file's kind and, for a ZIP, its names and declared sizes."""

    def __init__(self, path: str, name: str, limits: Limits):
        self.path, self.name, self.limits = path, name, limits
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if head.startswith(_ZIP_MAGIC):
            self.members = self._zip_members()
        elif head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{"):
            self.members = None
        else:
            raise ImportRefused(
                _("%(file)s is neither a ZIP archive nor a JSON file. Upload the ZIP of a ChatGPT data export, "
                  "its conversations.json, or a JSON export from this site.") % {"file": name}
            )

    # --- the two passes -----------------------------------------------------------------------

    def count(self, on_item: Callable[[], None] = lambda: None) -> int:
        """How many conversations the file holds, checking that every document is valid JSON of the right shape
        (ImportRefused otherwise); `on_item` is called after each one (the caller's heartbeat)."""
        total = recognised = 0
        for item in self.items():
            total += 1
            recognised += isinstance(item, dict) and ("mapping" in item or "messages" in item)
            on_item()
        if total and not recognised:
            raise ImportRefused(
                _("%(file)s holds no conversations this site can read: expected a ChatGPT data export "
                  "(a list of conversations with a “mapping”) or a JSON export from this site.") % {"file": self.name}
            )
        return total

    def items(self) -> Iterator:
        """Every conversation object in the file, in order (for a ZIP, the members in their numbered order)."""
        for document, stream in self._documents():
            try:
                yield from JSONItems(stream, max_item_chars=self.limits.max_conversation_chars)
            except JSONError as exc:
                raise ImportRefused(
                    _("%(file)s is not valid JSON: %(reason)s at line %(line)s, column %(column)s.")
                    % {"file": document, "reason": JSON_REASONS.get(exc.reason, exc.reason), "line": exc.line,
                       "column": exc.column}
                ) from None
            except NotAListOrObject:
                raise ImportRefused(
                    _("%(file)s holds neither a list of conversations nor a conversation.") % {"file": document}
                ) from None
            except ItemTooLarge as exc:
                raise ImportRefused(
                    _("%(file)s: the conversation at line %(line)s, column %(column)s is larger than the limit of "
                      "%(limit)s characters for one conversation.")
                    % {"file": document, "line": exc.line, "column": exc.column,
                       "limit": f"{self.limits.max_conversation_chars:,}"}
                ) from None
            except UnicodeDecodeError:
                raise ImportRefused(_("%(file)s is not UTF-8 text.") % {"file": document}) from None
            except (zipfile.BadZipFile, zlib.error, EOFError):
                raise ImportRefused(
                    _("The archive is damaged: %(file)s does not match its recorded size or checksum.") % {"file": document}
                ) from None

    # --- files and members --------------------------------------------------------------------

    def _documents(self) -> Iterator[tuple[str, io.TextIOBase]]:
        if self.members is None:
            with open(self.path, "rb") as raw:
                yield self.name, _text(raw)
            return
        with self._zip() as archive:
            read_so_far = 0
            for info in self.members:
                try:
                    member = archive.open(info)
                except (RuntimeError, NotImplementedError, zipfile.BadZipFile) as exc:  # encrypted, unknown method
                    raise ImportRefused(
                        _("%(file)s in the archive cannot be read (%(reason)s).") % {"file": info.filename, "reason": exc}
                    ) from None
                with member:
                    capped = _CappedReader(member, info, self.limits, already_read=read_so_far)
                    yield info.filename, _text(capped)
                    read_so_far += capped.count

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        try:
            archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise ImportRefused(_("%(file)s is not a readable ZIP archive.") % {"file": self.name}) from None
        with archive:
            yield archive

    def _zip_members(self) -> list[zipfile.ZipInfo]:
        """The members holding conversations, after checking every name and the declared sizes."""
        with self._zip() as archive:
            infos = archive.infolist()
        for info in infos:
            if not _safe_name(info.filename):
                raise ImportRefused(
                    _("The archive holds a file with an unsafe name (%(name)s): nothing was imported.")
                    % {"name": info.filename[:200]}
                )
        members = _conversation_members(infos)
        if not members:
            raise ImportRefused(
                _("%(file)s holds no conversations.json (or conversations-000.json …): is it a ChatGPT data export?")
                % {"file": self.name}
            )
        declared = sum(info.file_size for info in members)
        if declared > self.limits.max_uncompressed_bytes:
            raise ImportRefused(
                _("The conversations in %(file)s unpack to %(size)s, more than the limit of %(limit)s.")
                % {"file": self.name, "size": filesizeformat(declared),
                   "limit": filesizeformat(self.limits.max_uncompressed_bytes)}
            )
        for info in members:
            if info.file_size > _RATIO_FLOOR and info.file_size > self.limits.max_ratio * max(info.compress_size, 1):
                raise ImportRefused(_ratio_message(info, self.limits))
        return members


def _safe_name(name: str) -> bool:
    """Not absolute (/x, \\x, C:x) and never climbing out (..): names are never used as paths here, but an
    archive that holds such names is not an export anyone made by hand."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return False
    return ".." not in PurePosixPath(name.replace("\\", "/")).parts


def _conversation_members(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """conversations-NNN.json in number order (or else conversations.json), from the shallowest folder that has them."""
    found = [info for info in infos if not info.is_dir() and CONVERSATIONS_FILE.match(PurePosixPath(info.filename).name)]
    if not found:
        return []
    folder = min((PurePosixPath(info.filename).parent for info in found), key=lambda path: (len(path.parts), str(path)))
    here = [info for info in found if PurePosixPath(info.filename).parent == folder]
    split = [info for info in here if CONVERSATIONS_FILE.match(PurePosixPath(info.filename).name).group(1) is not None]
    if split:
        return sorted(split, key=lambda info: int(CONVERSATIONS_FILE.match(PurePosixPath(info.filename).name).group(1)))
    return here[:1]


def _ratio_message(info: zipfile.ZipInfo, limits: Limits) -> str:
    return _(
        "%(file)s in the archive is compressed more than %(ratio)s times (refused as a possible ZIP bomb)."
    ) % {"file": info.filename, "ratio": f"{limits.max_ratio:g}"}


def _text(raw: BinaryIO) -> io.TextIOWrapper:
    """UTF-8 text (a byte-order mark is skipped) read in large pieces."""
    buffered = raw if isinstance(raw, io.BufferedIOBase) else io.BufferedReader(raw, _READ_BYTES)
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="strict")


class _CappedReader(io.RawIOBase):
    """A ZIP member's bytes, counted as they are inflated: past its declared size, the archive's total cap or
    the compression ratio, reading stops with ImportRefused, whatever the headers said."""

    def __init__(self, member, info: zipfile.ZipInfo, limits: Limits, *, already_read: int):
        self.member, self.info, self.limits = member, info, limits
        self.budget = limits.max_uncompressed_bytes - already_read
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.member.read(len(buffer))
        self.count += len(data)
        if self.count > self.info.file_size:
            raise ImportRefused(
                _("The archive is damaged: %(file)s does not match its recorded size or checksum.")
                % {"file": self.info.filename}
            )
        if self.count > self.budget:
            raise ImportRefused(
                _("The conversations in the archive unpack to more than the limit of %(limit)s.")
                % {"limit": filesizeformat(self.limits.max_uncompressed_bytes)}
            )
        if self.count > _RATIO_FLOOR and self.count > self.limits.max_ratio * max(self.info.compress_size, 1):
            raise ImportRefused(_ratio_message(self.info, self.limits))
        buffer[: len(data)] = data
        return len(data)
