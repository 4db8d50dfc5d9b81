"""Which Claude Code extensions exist on this machine: skills, slash commands, subagents and MCP servers.

Users edit these files by hand, so this module is defensive. A file that cannot be read or parsed is skipped, and the
reason goes in ``errors``; nothing is raised. The MCP ``env`` and ``headers`` maps carry API keys and tokens, so only
their keys are reported, never their values. Secrets in URLs and in obviously named arguments are masked as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Item = dict[str, Any]  # JSON-shaped: string fields, plus lists of strings for MCP args and key names
Found = dict[str, list[Item]]

KINDS = ("skills", "commands", "agents", "mcp_servers")
DESCRIPTION_LIMIT = 200
MAX_MARKDOWN_BYTES = 1024 * 1024  # only front matter and the first body line matter
MASK = "***"


class MalformedError(ValueError):
    """A file that exists and can be read, but does not have the shape Claude Code expects."""


# --- front matter ---------------------------------------------------------------------------------------------------

_KEY_LINE = re.compile(r"^([A-Za-z0-9_][\w.-]*)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
_BLOCK_INDICATOR = re.compile(r"^([|>])[-+]?$")
_SINGLE_QUOTED = re.compile(r"^'((?:[^']|'')*)'\s*(?:#.*)?$")


def _unquote(value: str) -> str:
    """A YAML scalar written on one line: quoted strings lose their quotes and plain ones lose a trailing comment."""
    if value.startswith('"'):
        try:
            text, end = json.JSONDecoder().raw_decode(value)  # YAML double-quoted escapes are close to JSON's
        except ValueError:
            return value.strip('"')
        rest = value[end:].strip()
        return str(text) if isinstance(text, str) and (not rest or rest.startswith("#")) else value
    if value.startswith("'"):
        quoted = _SINGLE_QUOTED.match(value)
        return quoted.group(1).replace("''", "'") if quoted else value.strip("'")
    return re.sub(r"\s+#.*$", "", value)


def _front_matter_pairs(lines: list[str]) -> dict[str, str]:
    """``key: value`` pairs. Indented lines continue the previous value, as in a block scalar (``|``, ``>``) or a folded
    plain scalar. List items and nested mappings under a key are accepted and ignored, because only flat string values
    are used here."""
    pairs: dict[str, str] = {}
    key: str | None = None
    mode = "ignore"  # what indented lines mean: "literal" / "folded" text, "nested" structure or text, or "ignore"
    for number, line in enumerate(lines, start=2):
        stripped = line.strip()
        indented = line[:1] in (" ", "\t") or stripped == "-" or stripped.startswith("- ")
        if not stripped or (stripped.startswith("#") and not (indented and mode == "literal")):
            continue
        if indented:
            if key is None:
                raise MalformedError(f"front matter line {number}: indented line before any key")
            nested = stripped == "-" or stripped.startswith("- ") or bool(_KEY_LINE.match(stripped))
            if mode in ("literal", "folded") or (mode == "nested" and not nested):
                joiner = "\n" if mode == "literal" else " "
                pairs[key] = f"{pairs[key]}{joiner}{stripped}" if pairs[key] else stripped
            continue
        match = _KEY_LINE.match(line)
        if not match:
            raise MalformedError(f"front matter line {number}: expected 'key: value'")
        key, value = match.group(1), match.group(2) or ""
        block = _BLOCK_INDICATOR.match(value)
        if block:
            pairs[key], mode = "", "literal" if block.group(1) == "|" else "folded"
        elif not value:
            pairs[key], mode = "", "nested"
        else:
            pairs[key], mode = _unquote(value), "ignore" if value[:1] in ("'", '"') else "folded"
    return pairs


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split Markdown into its front matter (the lines between a leading ``---`` and the next ``---``) and its body.

    A tiny subset of YAML, to avoid a PyYAML dependency. Raises MalformedError when the front matter is not closed or a
    line is not ``key: value``. Text without a leading ``---`` has no front matter.
    """
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            return _front_matter_pairs(lines[1:end]), "\n".join(lines[end + 1 :])
    raise MalformedError("front matter has no closing '---'")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def _description(meta: Mapping[str, str], body: str) -> str:
    """The front matter ``description``, else the first non-empty body line with any Markdown heading marks removed."""
    if meta.get("description", "").strip():
        return _trim(meta["description"])
    for line in body.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return _trim(line)
    return ""


# --- the collector --------------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.found: Found = {kind: [] for kind in KINDS}
        self.errors: list[Item] = []

    def error(self, path: Path | str, reason: str) -> None:
        self.errors.append({"path": str(path), "error": reason})

    def result(self) -> Found:
        def order(item: Item) -> tuple[str, ...]:
            return tuple(str(item.get(key, "")) for key in ("scope", "project", "name", "path"))

        result: Found = {kind: sorted(items, key=order) for kind, items in self.found.items()}
        result["errors"] = sorted(self.errors, key=lambda item: (str(item["path"]), str(item["error"])))
        return result


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError):
        return f"unreadable: {exc.strerror or type(exc).__name__}"
    return str(exc) or type(exc).__name__


def _is_dir(path: Path) -> bool:
    """Path.is_dir, except that a permission error means 'no' instead of raising."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _entries(found: _Collector, directory: Path) -> list[Path]:
    """The entries of ``directory``, sorted; a missing directory is empty, an unreadable one is an error."""
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        found.error(directory, _reason(exc))
        return []


def _read_markdown(found: _Collector, path: Path) -> tuple[dict[str, str], str] | None:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_MARKDOWN_BYTES)
        return parse_front_matter(raw.decode("utf-8-sig"))
    except (OSError, ValueError) as exc:  # ValueError covers MalformedError and UnicodeDecodeError
        found.error(path, _reason(exc))
        return None


def _markdown_item(found: _Collector, path: Path, fallback_name: str, scope: str, project: Path | None) -> Item | None:
    parsed = _read_markdown(found, path)
    if parsed is None:
        return None
    meta, body = parsed
    item: Item = {
        "name": meta.get("name", "").strip() or fallback_name,
        "scope": scope,
        "path": str(path),
        "description": _description(meta, body),
    }
    if project is not None:
        item["project"] = str(project)
    return item


# --- skills, commands, agents ---------------------------------------------------------------------------------------


def _skills(found: _Collector, base: Path, scope: str, project: Path | None) -> None:
    for directory in _entries(found, base / "skills"):
        if not _is_dir(directory):
            continue
        skill = directory / "SKILL.md"
        try:
            skill.lstat()  # lstat, so a broken symlink reaches the read below and is reported, not passed over
        except FileNotFoundError:
            continue  # a directory without SKILL.md is not a skill
        except OSError as exc:  # a directory we may not look into could hold a skill; say so
            found.error(directory, _reason(exc))
            continue
        item = _markdown_item(found, skill, directory.name, scope, project)
        if item is not None:
            found.found["skills"].append(item)


def _markdown_files(found: _Collector, root: Path) -> Iterator[Path]:
    """Every ``*.md`` under ``root``, without following symlinked directories, which could loop."""

    def report(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):
            found.error(exc.filename or root, _reason(exc))

    for directory, subdirs, files in os.walk(root, onerror=report):
        subdirs.sort()
        for name in sorted(files):
            if name.endswith(".md"):
                yield Path(directory) / name


def _commands(found: _Collector, base: Path, scope: str, project: Path | None) -> None:
    root = base / "commands"
    for path in _markdown_files(found, root):
        name = ":".join(path.relative_to(root).with_suffix("").parts)
        item = _markdown_item(found, path, name, scope, project)
        if item is not None:
            item["name"] = name  # commands are invoked by path; the front matter name does not apply to them
            found.found["commands"].append(item)


def _agents(found: _Collector, base: Path, scope: str, project: Path | None) -> None:
    for path in _entries(found, base / "agents"):
        if path.suffix == ".md" and not _is_dir(path):
            item = _markdown_item(found, path, path.stem, scope, project)
            if item is not None:
                found.found["agents"].append(item)


def _claude_dir(found: _Collector, base: Path, scope: str, project: Path | None) -> None:
    _skills(found, base, scope, project)
    _commands(found, base, scope, project)
    _agents(found, base, scope, project)


# --- MCP servers ----------------------------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|credential|bearer", re.IGNORECASE)


def _mask_url(url: str) -> str:
    """The URL with any user info and every query value masked, since tokens often travel there."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
        query = urlencode([(name, MASK) for name, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return MASK


def _mask_args(args: list[str]) -> list[str]:
    """Arguments with the values of secret-looking options masked: ``--api-key X``, ``--token=X``, ``API_KEY=X``."""
    masked: list[str] = []
    for arg in args:
        name, equals, _ = arg.partition("=")
        if masked and masked[-1].startswith("-") and "=" not in masked[-1] and _SECRET_NAME.search(masked[-1]):
            masked.append(MASK)
        elif equals and _SECRET_NAME.search(name):
            masked.append(f"{name}={MASK}")
        else:
            masked.append(arg)
    return masked


def _key_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise MalformedError(f"'{what}' is not an object")
    return sorted(str(key) for key in value)


def _mcp_item(name: str, spec: object, scope: str, path: Path, project: str | None) -> Item:
    if not isinstance(spec, Mapping):
        raise MalformedError(f"MCP server '{name}' is not an object")
    kind = spec.get("type")
    if kind is None and "url" in spec and "command" not in spec:
        raise MalformedError(f"MCP server '{name}' has a url but no type; Claude Code skips it")
    kind = "stdio" if kind is None else kind
    if not isinstance(kind, str):
        raise MalformedError(f"MCP server '{name}' has a type that is not a string")
    item: Item = {"name": name, "scope": scope, "path": str(path), "type": kind}
    if project is not None:
        item["project"] = project
    if kind == "stdio":
        command, args = spec.get("command"), spec.get("args", [])
        if not isinstance(command, str) or not isinstance(args, list):
            raise MalformedError(f"MCP server '{name}' needs a string 'command' and a list 'args'")
        masked = _mask_args([str(arg) for arg in args])
        item["command"], item["args"] = command, masked
        item["description"] = _trim(" ".join([command, *masked]))
    else:
        url = spec.get("url")
        if not isinstance(url, str):
            raise MalformedError(f"MCP server '{name}' of type {kind} needs a string 'url'")
        item["url"] = item["description"] = _mask_url(url)
    item["env_keys"] = _key_list(spec.get("env"), "env")
    item["header_keys"] = _key_list(spec.get("headers"), "headers")
    return item


def _mcp_servers(found: _Collector, servers: object, scope: str, path: Path, project: str | None) -> None:
    if servers is None:
        return
    if not isinstance(servers, Mapping):
        found.error(path, f"'mcpServers' is not an object{f' for {project}' if project else ''}")
        return
    for name, spec in servers.items():
        try:
            found.found["mcp_servers"].append(_mcp_item(str(name), spec, scope, path, project))
        except MalformedError as exc:
            found.error(path, str(exc))


def _read_json(found: _Collector, path: Path) -> Mapping[str, Any] | None:
    """A JSON object from ``path``; None, silently, when the file does not exist."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        found.error(path, _reason(exc) if not isinstance(exc, json.JSONDecodeError) else f"invalid JSON: {exc}")
        return None
    if not isinstance(data, dict):
        found.error(path, "not a JSON object")
        return None
    return data


def _claude_json(found: _Collector, path: Path) -> None:
    """``~/.claude.json``: top-level servers are user scope; ``projects[<abs path>]`` servers are local scope."""
    data = _read_json(found, path)
    if data is None:
        return
    _mcp_servers(found, data.get("mcpServers"), "user", path, None)
    projects = data.get("projects")
    if isinstance(projects, Mapping):
        for project, settings in projects.items():
            if isinstance(settings, Mapping):
                _mcp_servers(found, settings.get("mcpServers"), "local", path, str(project))


def _mcp_json(found: _Collector, project: Path) -> None:
    path = project / ".mcp.json"
    data = _read_json(found, path)
    if data is not None:
        _mcp_servers(found, data.get("mcpServers"), "project", path, str(project))


# --- public ---------------------------------------------------------------------------------------------------------


def discover(home: Path, project_dirs: Iterable[Path] = (), *, config_dir: Path | None = None) -> Found:
    """Skills, commands, agents and MCP servers visible to Claude Code for ``home`` and ``project_dirs``.

    Returns ``{"skills", "commands", "agents", "mcp_servers", "errors"}``, each a sorted list of dicts. Every item has
    ``name``, ``scope`` (``user``, ``project``, or ``local`` for per-project servers in ``~/.claude.json``), ``path``
    and ``description``; project and local items also have ``project``. ``config_dir`` stands for
    ``$CLAUDE_CONFIG_DIR``, which moves both ``~/.claude`` and ``~/.claude.json``. Never raises for bad files.
    """
    found = _Collector()
    user_dir = config_dir if config_dir is not None else home / ".claude"
    _claude_dir(found, user_dir, "user", None)
    _claude_json(found, (config_dir if config_dir is not None else home) / ".claude.json")
    for project in dict.fromkeys(Path(p) for p in project_dirs):
        _claude_dir(found, project / ".claude", "project", project)
        _mcp_json(found, project)
    return found.result()


def fingerprint(found: Mapping[str, Any]) -> str:
    """A stable SHA-256 of a ``discover`` result, so the agent reports only when something changed."""
    canonical = json.dumps(found, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
