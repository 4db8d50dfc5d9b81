"""Discovery of Claude Code skills, commands, subagents and MCP servers from a fake home and project."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from claudenest.agent.discovery import MalformedError, discover, fingerprint, parse_front_matter

SECRETS = [
    "SECRET_ENV_VALUE",
    "SECRET_HEADER_VALUE",
    "SECRET_PG_PASSWORD",
    "SECRET_OAUTH",
    "SECRET_PROJECT_ENV",
    "SECRET_URL_PASSWORD",
    "SECRET_QUERY_TOKEN",
    "SECRET_ARG_KEY",
]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _build_home(home: Path, project: Path) -> None:
    claude = home / ".claude"
    _write(
        claude / "skills" / "review" / "SKILL.md",
        '---\nname: "Code Review"\ndescription: Reviews a diff for bugs\nallowed-tools:\n  - Read\n---\nBody\n',
    )
    _write(claude / "skills" / "plain" / "SKILL.md", "\n\n# Summarise a log file\n\nDetails.\n")
    _write(claude / "skills" / "unclosed" / "SKILL.md", "---\nname: unclosed\ndescription: never ends\n")
    _write(claude / "skills" / "latin1" / "SKILL.md", b"---\ndescription: caf\xe9\n---\n")
    (claude / "skills" / "folder" / "SKILL.md").mkdir(parents=True)  # exists but cannot be read as a file
    (claude / "skills" / "empty-dir").mkdir()  # no SKILL.md: not a skill, not an error
    _write(claude / "skills" / "stray.md", "a file directly under skills/ is not a skill")
    _write(claude / "commands" / "deploy.md", "---\ndescription: 'Deploy to ''staging'''\n---\nRun the deploy.\n")
    _write(claude / "commands" / "frontend" / "component.md", "Create a React component for $ARGUMENTS\n")
    _write(claude / "commands" / "notes.txt", "not a command")
    _write(
        claude / "agents" / "reviewer.md",
        "---\nname: code-reviewer\ndescription: >\n  Expert reviewer.\n  Use after edits.\ntools: Read, Grep\n---\n"
        "You are a reviewer.\n",
    )
    _write(claude / "agents" / "bad.md", "---\nname: bad\nthis line is not yaml\n---\n")
    _write(
        home / ".claude.json",
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "oauthAccount": {"accessToken": "SECRET_OAUTH"},
                "mcpServers": {
                    "github": {
                        "type": "http",
                        "url": "https://api.example.com/mcp",
                        "headers": {"Authorization": "Bearer SECRET_HEADER_VALUE"},
                    },
                    "local-py": {
                        "type": "stdio",
                        "command": "python3",
                        "args": ["-m", "srv", "--api-key", "SECRET_ARG_KEY"],
                        "env": {"API_KEY": "SECRET_ENV_VALUE", "LOG_LEVEL": "debug"},
                    },
                },
                "projects": {
                    str(project): {
                        "hasTrustDialogAccepted": True,
                        "mcpServers": {"db": {"command": "pg-mcp", "env": {"PGPASSWORD": "SECRET_PG_PASSWORD"}}},
                    },
                    "/elsewhere": {"mcpServers": []},
                },
            }
        ),
    )


def _build_project(project: Path) -> None:
    claude = project / ".claude"
    _write(claude / "skills" / "release" / "SKILL.md", "---\ndescription: Cut a release\n---\n")
    _write(claude / "commands" / "build.md", "---\nargument-hint: [target]\n---\n\n  Build the target  \n")
    _write(claude / "agents" / "tester.md", "---\nname: tester\ndescription: Writes tests\n---\n")
    _write(
        project / ".mcp.json",
        json.dumps(
            {
                "mcpServers": {
                    "remote": {
                        "type": "sse",
                        "url": "https://bot:SECRET_URL_PASSWORD@host.example/sse?token=SECRET_QUERY_TOKEN",
                    },
                    "docs": {"command": "npx", "args": ["-y", "docs-mcp"], "env": {"DOCS_TOKEN": "SECRET_PROJECT_ENV"}},
                    "ws-thing": {"type": "ws", "url": "wss://host.example/ws"},
                    "typeless": {"url": "https://host.example/mcp"},
                    "broken": "not an object",
                }
            }
        ),
    )


@pytest.fixture
def found(tmp_path: Path) -> dict[str, Any]:
    home, project = tmp_path / "u", tmp_path / "proj"
    _build_home(home, project)
    _build_project(project)
    other = tmp_path / "other"
    _write(other / ".mcp.json", "{not json")
    return discover(home, [project, other])


def _names(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["scope"], item["name"]) for item in items]


def test_skills(found: dict[str, Any], tmp_path: Path) -> None:
    assert _names(found["skills"]) == [("project", "release"), ("user", "Code Review"), ("user", "plain")]
    release, review, plain = found["skills"]
    assert review["description"] == "Reviews a diff for bugs"
    assert review["path"] == str(tmp_path / "u" / ".claude" / "skills" / "review" / "SKILL.md")
    assert "project" not in review
    assert plain["description"] == "Summarise a log file"
    assert release["project"] == str(tmp_path / "proj")


def test_commands_are_named_by_path(found: dict[str, Any]) -> None:
    assert _names(found["commands"]) == [("project", "build"), ("user", "deploy"), ("user", "frontend:component")]
    build, deploy, component = found["commands"]
    assert build["description"] == "Build the target"
    assert deploy["description"] == "Deploy to 'staging'"
    assert component["description"] == "Create a React component for $ARGUMENTS"


def test_agents(found: dict[str, Any]) -> None:
    assert _names(found["agents"]) == [("project", "tester"), ("user", "code-reviewer")]
    assert found["agents"][1]["description"] == "Expert reviewer. Use after edits."


def test_mcp_servers(found: dict[str, Any], tmp_path: Path) -> None:
    servers = {(item["scope"], item["name"]): item for item in found["mcp_servers"]}
    assert list(servers) == [
        ("local", "db"),
        ("project", "docs"),
        ("project", "remote"),
        ("project", "ws-thing"),
        ("user", "github"),
        ("user", "local-py"),
    ]
    claude_json = str(tmp_path / "u" / ".claude.json")
    assert servers["user", "github"] == {
        "name": "github",
        "scope": "user",
        "path": claude_json,
        "type": "http",
        "url": "https://api.example.com/mcp",
        "description": "https://api.example.com/mcp",
        "env_keys": [],
        "header_keys": ["Authorization"],
    }
    local_py = servers["user", "local-py"]
    assert (local_py["type"], local_py["command"]) == ("stdio", "python3")
    assert local_py["args"] == ["-m", "srv", "--api-key", "***"]
    assert local_py["env_keys"] == ["API_KEY", "LOG_LEVEL"]
    db = servers["local", "db"]
    assert (db["type"], db["project"], db["path"], db["args"]) == ("stdio", str(tmp_path / "proj"), claude_json, [])
    assert servers["project", "docs"]["path"] == str(tmp_path / "proj" / ".mcp.json")
    assert servers["project", "docs"]["description"] == "npx -y docs-mcp"
    assert servers["project", "remote"]["url"] == "https://***@host.example/sse?token=***"
    assert servers["project", "ws-thing"]["type"] == "ws"


def test_secrets_never_appear(found: dict[str, Any]) -> None:
    text = json.dumps(found)
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == []
    assert "debug" not in text  # not even harmless env values


def test_errors_name_each_bad_file(found: dict[str, Any], tmp_path: Path) -> None:
    errors = {(Path(error["path"]).relative_to(tmp_path).as_posix(), error["error"]) for error in found["errors"]}
    assert errors == {
        ("u/.claude/agents/bad.md", "front matter line 3: expected 'key: value'"),
        ("u/.claude/skills/folder/SKILL.md", "unreadable: Is a directory"),
        ("u/.claude/skills/latin1/SKILL.md", "not UTF-8 text"),
        ("u/.claude/skills/unclosed/SKILL.md", "front matter has no closing '---'"),
        ("u/.claude.json", "'mcpServers' is not an object for /elsewhere"),
        ("proj/.mcp.json", "MCP server 'broken' is not an object"),
        ("proj/.mcp.json", "MCP server 'typeless' has a url but no type; Claude Code skips it"),
        (
            "other/.mcp.json",
            "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    }
    assert found["errors"] == sorted(found["errors"], key=lambda e: (e["path"], e["error"]))


def test_missing_home_is_empty_not_an_error(tmp_path: Path) -> None:
    assert discover(tmp_path / "nobody", [tmp_path / "no-project"]) == {
        "skills": [],
        "commands": [],
        "agents": [],
        "mcp_servers": [],
        "errors": [],
    }


def test_broken_symlink_and_non_object_json(tmp_path: Path) -> None:
    home = tmp_path / "u"
    (home / ".claude" / "skills" / "ghost").mkdir(parents=True)
    (home / ".claude" / "skills" / "ghost" / "SKILL.md").symlink_to(tmp_path / "nowhere")
    _write(home / ".claude.json", "[1, 2]")
    errors = discover(home)["errors"]
    assert [Path(error["path"]).name for error in errors] == [".claude.json", "SKILL.md"]
    assert errors[0]["error"] == "not a JSON object"
    assert errors[1]["error"].startswith("unreadable")


def test_config_dir_moves_both_locations(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    _write(config / "commands" / "hi.md", "Say hi\n")
    _write(config / ".claude.json", json.dumps({"mcpServers": {"s": {"command": "srv"}}}))
    _write(tmp_path / "u" / ".claude" / "commands" / "ignored.md", "not used when config_dir is set\n")
    found = discover(tmp_path / "u", config_dir=config)
    assert _names(found["commands"]) == [("user", "hi")]
    assert _names(found["mcp_servers"]) == [("user", "s")]


def test_long_descriptions_are_trimmed(tmp_path: Path) -> None:
    _write(tmp_path / "u" / ".claude" / "commands" / "long.md", "word " * 100)
    (item,) = discover(tmp_path / "u")["commands"]
    assert len(item["description"]) == 200
    assert item["description"].endswith("…")


# --- fingerprint ----------------------------------------------------------------------------------------------------


def test_fingerprint_is_stable(tmp_path: Path) -> None:
    home, project = tmp_path / "u", tmp_path / "proj"
    _build_home(home, project)
    _build_project(project)
    first = fingerprint(discover(home, [project]))
    assert fingerprint(discover(home, [project])) == first
    assert fingerprint(discover(home, [project, project])) == first  # a repeated project is read once
    os.utime(home / ".claude" / "commands" / "deploy.md", (1, 1))  # touching a file is not a change
    assert fingerprint(discover(home, [project])) == first
    assert len(first) == 64


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    home, project = tmp_path / "u", tmp_path / "proj"
    _build_home(home, project)
    _build_project(project)
    seen = {fingerprint(discover(home, [project]))}
    _write(home / ".claude" / "commands" / "new.md", "A new command\n")
    seen.add(fingerprint(discover(home, [project])))
    _write(project / ".claude" / "agents" / "tester.md", "---\nname: tester\ndescription: Writes more tests\n---\n")
    seen.add(fingerprint(discover(home, [project])))
    (home / ".claude.json").unlink()
    seen.add(fingerprint(discover(home, [project])))
    assert len(seen) == 4


def test_fingerprint_ignores_key_order() -> None:
    a = {"skills": [{"name": "x", "scope": "user"}], "errors": []}
    b = {"errors": [], "skills": [{"scope": "user", "name": "x"}]}
    assert fingerprint(a) == fingerprint(b)


# --- front matter ---------------------------------------------------------------------------------------------------


def test_front_matter_subset() -> None:
    text = (
        "---\n"
        'name: "tab\\there"\n'
        "quoted: 'it''s' # a comment\n"
        "plain: value # a comment\n"
        "url: see http://example.com/a\n"
        "literal: |\n  line one\n  # not a comment\n  line two\n"
        "folded: >-\n  one\n  two\n"
        "wrapped: starts here\n  and continues\n"
        "empty:\n"
        "listed:\n  - a\n  - b\n"
        "nested:\n  key: value\n"
        "# a comment line\n"
        "---\n"
        "body line\n"
    )
    meta, body = parse_front_matter(text)
    assert meta == {
        "name": "tab\there",
        "quoted": "it's",
        "plain": "value",
        "url": "see http://example.com/a",
        "literal": "line one\n# not a comment\nline two",
        "folded": "one two",
        "wrapped": "starts here and continues",
        "empty": "",
        "listed": "",
        "nested": "",
    }
    assert body == "body line"


def test_no_front_matter_means_all_body() -> None:
    assert parse_front_matter("# Title\n---\nx: y\n") == ({}, "# Title\n---\nx: y\n")
    assert parse_front_matter("") == ({}, "")


@pytest.mark.parametrize(
    "text",
    ["---\nname: x\n", "---\n  indented: first\n---\n", "---\nkey:value\n---\n", "---\njust words\n---\n"],
)
def test_malformed_front_matter(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_front_matter(text)
