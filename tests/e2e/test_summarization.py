"""A real relay configured with ``[context.summarizer] kind = "ollama"`` against a loopback Ollama stand-in: a
completed task's recent_changes line is written extractively at once, then replaced by the model's summary; with
Ollama down the extractive line stays."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.coordination_helpers import Instance, new_instance, new_project, new_task
from tests.e2e.harness import Relay, User, add_user, wait_until
from tests.ollama_standin import FakeOllama


def complete(worker: Instance, user: User, project_id: str, title: str, summary: str) -> None:
    task = new_task(user, project_id, title)
    base = f"/api/projects/{project_id}/tasks/{task['id']}"
    assert worker.api("POST", f"{base}/claim").status_code == 200
    done = worker.api("POST", f"{base}/complete", json={"summary": summary, "files_modified": ["cart/coupons.py"]})
    assert done.status_code == 200, done.text


def recent_changes(user: User, project_id: str) -> list[str]:
    response = user.api("GET", f"/api/projects/{project_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["project"]["recent_changes"]).splitlines()


def test_recent_changes_get_ollamas_summary_and_keep_the_extractive_line_while_it_is_down(tmp_path: Path) -> None:
    ollama = FakeOllama()
    ollama.plan.reply = "Here is the summary:\n\nCoupon codes are checked at checkout and kept per order.\n"
    config = tmp_path / "relay" / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[context.summarizer]\nkind = "ollama"\nurl = "{ollama.url}"\nmodel = "qwen2.5:0.5b"\n')
    relay = Relay(tmp_path / "relay").start()
    try:
        user = add_user(relay, "me@example.com", tmp_path / "cli")
        pid = new_project(user, "shop")["id"]
        worker = new_instance(user, pid, "worker")

        complete(worker, user, pid, "Add coupon codes", "Coupons are validated at checkout. Stored per order.")
        upgraded = "- Add coupon codes: Coupon codes are checked at checkout and kept per order."
        wait_until(lambda: recent_changes(user, pid) == [upgraded], message=f"recent_changes == [{upgraded!r}]")
        (request,) = ollama.plan.requests
        assert request["path"] == "/api/generate"
        assert request["body"]["model"] == "qwen2.5:0.5b"
        assert "Add coupon codes" in request["body"]["prompt"]

        ollama.close()  # Ollama goes away: the next completion keeps its extractive line
        complete(worker, user, pid, "Fix totals", "Totals round half-even now. The tests cover it.")
        assert relay.proc is not None
        relay.proc.wait_for(r"WARNING claudenest\.relay\.summarize: summarizer ollama:qwen2\.5:0\.5b failed")
        assert recent_changes(user, pid) == ["- Fix totals: Totals round half-even now.", upgraded]
    finally:
        relay.stop()
        ollama.close()
