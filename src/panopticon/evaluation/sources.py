"""Reading input files with positions: YAML with a line for every key, JSONL, CSV, UTF-8.

Every error names the file and line and says how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from panopticon.errors import ConfigError, Issue

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "Located",
    "dedupe_issues",
    "iter_csv",
    "iter_jsonl",
    "load_yaml",
    "read_text",
    "substitute_env",
    "validation_issues",
]

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


class Located:
    """A parsed document and the line of each key path in it."""

    def __init__(
        self, data: Any, lines: dict[Path_, int], file: str, issues: list[Issue] | None = None
    ) -> None:
        self.data = data
        self.lines = lines
        self.file = file
        # problems found while reading (a missing ${VAR}): reported with the validation's
        self.issues = issues or []

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path`` or of its nearest ancestor."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def issue(
        self, message: str, path: Path_, *, hint: str | None = None, field: str | None = None
    ) -> Issue:
        """A problem at ``path`` of this document: its file, the line of the path (or of its
        nearest ancestor) and, unless ``field`` is given, the path as a field
        (``metrics[0].models``)."""
        return Issue(
            message,
            file=self.file,
            line=self.line_of(path),
            field=_dotted(path) if field is None else field,
            hint=hint,
        )


def read_text(path: Path, *, what: str = "file") -> str:
    """Read a UTF-8 file; non-UTF-8 bytes give an error with their line and byte offset."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = (
            f"check the path (the current folder is {Path.cwd()})"
            if what == "suite file"
            else "check the path (relative paths are relative to the suite file)"
        )
        raise ConfigError(Issue(f"{what} not found", file=str(path), hint=hint)) from None
    except IsADirectoryError:
        raise ConfigError(Issue(f"{what} is a directory, not a file", file=str(path))) from None
    except PermissionError:
        raise ConfigError(
            Issue(f"{what} cannot be read (permission denied)", file=str(path))
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            Issue(
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                file=str(path),
                line=line,
                hint="save the file as UTF-8 (for example: iconv -f latin1 -t utf-8 in > out)",
            )
        ) from None


def substitute_env(text: str, env: Mapping[str, str], *, file: str, line: int | None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            raise ConfigError(
                Issue(
                    f"environment variable {name} is not set",
                    file=file,
                    line=line,
                    hint=f"export {name}=... or write ${{{name}:-default}} to give a default",
                )
            )
        return value

    return _VAR.sub(repl, text)


class _LineLoader(yaml.SafeLoader):
    pass


def _walk(
    loader: _LineLoader,
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    env: Mapping[str, str],
    file: str,
    issues: list[Issue],
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    Issue(
                        f"key '{key}' appears twice (first on line {seen[key]})",
                        file=file,
                        line=line,
                        field=_dotted((*path, key)),
                        hint="remove one of them",
                    )
                )
            seen[key] = line
            out[key] = _walk(loader, value_node, (*path, key), lines, env, file, issues)
            lines[(*path, key)] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(loader, item, (*path, i), lines, env, file, issues)
            for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node)
    if isinstance(value, str) and "$" in value:
        try:
            value = substitute_env(value, env, file=file, line=node.start_mark.line + 1)
        except ConfigError as err:  # reported with every other problem of the file
            issues.extend(err.issues)
            return value
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:str"
            and not node.style
        ):
            # an unquoted ${VAR} may stand for a number or a boolean: let YAML type it
            value = yaml.safe_load(value) if value.strip() else value
    return value


def load_yaml(path: Path, env: Mapping[str, str]) -> Located:
    """Parse a YAML file into plain data, substituting ``${VAR}`` in scalar values."""
    text = read_text(path, what="suite file")
    file = str(path)
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "malformed YAML"
        raise ConfigError(
            Issue(
                f"malformed YAML: {problem}",
                file=file,
                line=line,
                hint="check indentation and quoting near this line",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(Issue(f"malformed YAML: {exc}", file=file)) from None
    if node is None:
        raise ConfigError(
            Issue("the file is empty", file=file, hint="see examples/ for a suite to start from")
        )
    lines: dict[Path_, int] = {}
    issues: list[Issue] = []
    data = _walk(_LineLoader(""), node, (), lines, env, file, issues)
    return Located(data, lines, file, issues)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; then raise ConfigError with
    every line that is not a JSON object."""
    text = read_text(path, what="dataset")
    issues: list[Issue] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            issues.append(
                Issue(
                    f"not valid JSON: {exc}",
                    file=str(path),
                    line=number,
                    hint="each line must be one JSON object",
                )
            )
            continue
        if not isinstance(row, dict):
            issues.append(
                Issue(
                    f"expected a JSON object, found {type(row).__name__}",
                    file=str(path),
                    line=number,
                    hint='write each line as {"text": "...", ...}',
                )
            )
            continue
        yield number, row
    if issues:  # every bad line at once, after the good ones were read
        raise ConfigError(issues)


def iter_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number where the row starts, row) with the header's column names; empty
    cells are dropped. A quote that is never closed is an error, not a cell that silently
    swallows the rest of the file."""
    text = read_text(path, what="dataset")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if not header:
            raise ConfigError(
                Issue(
                    "the CSV file has no header row",
                    file=str(path),
                    line=1,
                    hint="put column names (text, theme, expected, ...) first",
                )
            )
        start = reader.line_num + 1
        for cells in reader:
            if len(cells) > len(header):
                raise ConfigError(
                    Issue(
                        "this row has more cells than the header has columns",
                        file=str(path),
                        line=start,
                        hint="quote cells that hold commas",
                    )
                )
            row = {k: v for k, v in zip(header, cells, strict=False) if k and v != ""}
            if row:
                yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise ConfigError(
                Issue(
                    "a quoted cell that starts in this row is never closed, so the rest of "
                    "the file would be read as that one cell",
                    file=str(path),
                    line=start,
                    hint='close the quote; write a quote inside a quoted cell as ""',
                )
            ) from None
        raise ConfigError(
            Issue(
                f"malformed CSV: {exc}",
                file=str(path),
                line=start,
                hint='quote a cell that holds commas or quotes, and double the quotes in it ("")',
            )
        ) from None


dotted = _dotted


# pydantic names the member of a union it tried (``str``, ``ModelSpec``): not a key
_UNION_TAGS = frozenset(
    {"str", "ModelSpec", "QuerySpec", "QueryFileSpec", "dict[str,any]", "dict[str,Any]"}
)


def validation_issues(
    err: ValidationError,
    doc: Located,
    base: Path_ = (),
    *,
    unknown_hint: str = "remove it or check its spelling",
) -> list[Issue]:
    """A pydantic error of a document (a suite, a rule) as issues naming the file, line and
    field of each problem; ``base`` is where the validated part sits in the document."""
    issues = []
    for e in err.errors():
        loc = base + tuple(p for p in e["loc"] if p not in _UNION_TAGS)
        msg = e["msg"]
        hint = None
        if e["type"] == "extra_forbidden" and e["loc"]:
            msg = f"unknown key '{e['loc'][-1]}'"
            hint = unknown_hint
        elif e["type"] == "missing":
            msg = "this field is required"
        issues.append(doc.issue(msg.removeprefix("Value error, "), loc, hint=hint))
    return dedupe_issues(issues)


_UNSET = re.compile(r"^environment variable (\w+) is not set$")


def dedupe_issues(issues: list[Issue]) -> list[Issue]:
    """The issues, each said once; and nothing more said of a value whose ``${VAR}`` is
    not set (its raw text is kept, so a base_url of ``${MOCK_URL}`` was also "refused: the
    scheme must be http or https"): setting the variable is the one fix."""
    names = [re.escape(m.group(1)) for i in issues if (m := _UNSET.match(i.message))]
    unset = re.compile(r"\$\{(?:" + "|".join(names) + r")[}:]") if names else None
    seen: set[str] = set()
    out = []
    for i in issues:
        if str(i) in seen or (
            unset is not None and not _UNSET.match(i.message) and unset.search(i.message)
        ):
            continue
        seen.add(str(i))
        out.append(i)
    return out
