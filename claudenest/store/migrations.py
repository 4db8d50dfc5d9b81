"""Numbered, append-only schema migrations, recorded in ``_migrations`` and applied on open.

Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from claudenest.store.context import INDEX_SCHEMA

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "core: users, tokens, machines, pairing, sessions, session logs",
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT,
            is_owner INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE personal_access_tokens (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            abilities TEXT NOT NULL DEFAULT '["*"]',
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE web_sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE login_links (
            token_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            expires_at TEXT NOT NULL,
            used_at TEXT
        );
        CREATE TABLE machines (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            hostname TEXT NOT NULL DEFAULT '',
            platform TEXT NOT NULL DEFAULT '',
            agent_version TEXT NOT NULL DEFAULT '',
            claude_version TEXT,
            token_hash TEXT UNIQUE,
            last_seen_at TEXT,
            last_ip TEXT,
            revoked_at TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX machines_user ON machines(user_id);
        CREATE TABLE pairing_codes (
            id TEXT PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            device_secret_hash TEXT NOT NULL,
            hostname TEXT NOT NULL,
            platform TEXT NOT NULL,
            requested_name TEXT NOT NULL,
            agent_version TEXT NOT NULL,
            ip TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
            machine_id TEXT REFERENCES machines(id) ON DELETE CASCADE,
            last_polled_at TEXT,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE claude_sessions (
            id TEXT PRIMARY KEY,
            machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            mode TEXT NOT NULL,
            command TEXT,
            project_path TEXT NOT NULL,
            initial_prompt TEXT,
            status TEXT NOT NULL,
            status_detail TEXT,
            pid INTEGER,
            exit_code INTEGER,
            cols INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            output_bytes INTEGER NOT NULL DEFAULT 0,
            log_start_offset INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            total_cost REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            started_at TEXT,
            completed_at TEXT
        );
        CREATE INDEX claude_sessions_user ON claude_sessions(user_id, created_at);
        CREATE INDEX claude_sessions_machine ON claude_sessions(machine_id, status);
        CREATE TABLE session_logs (
            session_id TEXT NOT NULL REFERENCES claude_sessions(id) ON DELETE CASCADE,
            offset INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (session_id, offset)
        ) WITHOUT ROWID;
        """,
    ),
    (
        2,
        "claude awareness: hook-driven state, usage, permission requests, discovery",
        """
        ALTER TABLE claude_sessions ADD COLUMN last_event TEXT;
        ALTER TABLE claude_sessions ADD COLUMN last_message TEXT;
        ALTER TABLE claude_sessions ADD COLUMN pending_permission TEXT;
        ALTER TABLE claude_sessions ADD COLUMN usage TEXT;
        ALTER TABLE machines ADD COLUMN discovery TEXT;
        ALTER TABLE machines ADD COLUMN discovery_at TEXT;
        """,
    ),
    (
        3,
        "coordination: shared projects, tasks, instances, file locks, activity",
        """
        CREATE TABLE shared_projects (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            project_path TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            architecture TEXT NOT NULL DEFAULT '',
            conventions TEXT NOT NULL DEFAULT '',
            current_focus TEXT NOT NULL DEFAULT '',
            recent_changes TEXT NOT NULL DEFAULT '',
            token_budget INTEGER NOT NULL DEFAULT 4000,
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (user_id, name)
        );
        CREATE TABLE project_fencing (
            project_id TEXT PRIMARY KEY REFERENCES shared_projects(id) ON DELETE CASCADE,
            value INTEGER NOT NULL
        );
        CREATE TABLE claude_instances (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES shared_projects(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            session_id TEXT REFERENCES claude_sessions(id) ON DELETE SET NULL,
            machine_id TEXT REFERENCES machines(id) ON DELETE SET NULL,
            token_hash TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disconnected', 'ended')),
            current_task_id TEXT,
            tasks_completed INTEGER NOT NULL DEFAULT 0,
            last_heartbeat_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX claude_instances_project ON claude_instances(project_id, status);
        CREATE INDEX claude_instances_heartbeat ON claude_instances(status, last_heartbeat_at);
        CREATE TABLE shared_tasks (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES shared_projects(id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
            priority_rank INTEGER GENERATED ALWAYS AS (
                CASE priority WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END
            ) VIRTUAL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'in_progress', 'blocked', 'review', 'done')),
            assigned_to TEXT REFERENCES claude_instances(id) ON DELETE SET NULL,
            dependencies TEXT NOT NULL DEFAULT '[]',
            files TEXT NOT NULL DEFAULT '[]',
            estimate TEXT,
            completion_summary TEXT,
            files_modified TEXT NOT NULL DEFAULT '[]',
            created_by TEXT NOT NULL,
            blocked_reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            claimed_at TEXT,
            completed_at TEXT
        );
        CREATE INDEX shared_tasks_claim ON shared_tasks(project_id, status, priority_rank DESC, created_at);
        CREATE INDEX shared_tasks_assigned ON shared_tasks(assigned_to, status);
        CREATE TABLE file_locks (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES shared_projects(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            holder_instance_id TEXT NOT NULL REFERENCES claude_instances(id) ON DELETE CASCADE,
            reason TEXT NOT NULL DEFAULT '',
            fencing INTEGER NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, path)
        );
        CREATE INDEX file_locks_holder ON file_locks(holder_instance_id);
        CREATE INDEX file_locks_expiry ON file_locks(expires_at);
        CREATE TABLE activity_logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id TEXT NOT NULL REFERENCES shared_projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            instance_id TEXT,
            task_id TEXT,
            message TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX activity_logs_project ON activity_logs(project_id, id);
        """,
    ),
    (
        4,
        "shared context: chunks, FTS5 index, binary-quantized sqlite-vec index",
        """
        CREATE TABLE context_chunks (
            n INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            project_id TEXT NOT NULL,
            type TEXT NOT NULL,
            content TEXT NOT NULL,
            files TEXT NOT NULL DEFAULT '[]',
            instance_id TEXT,
            task_id TEXT,
            importance REAL NOT NULL DEFAULT 0.5,
            expires_at TEXT,
            embedder TEXT NOT NULL,
            embedding BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX context_chunks_project ON context_chunks(project_id, created_at);
        CREATE VIRTUAL TABLE context_fts USING fts5(content, files, project_id UNINDEXED, tokenize='porter unicode61');
        CREATE VIRTUAL TABLE context_vec USING vec0(project_id TEXT PARTITION KEY, embedding BIT[384]);
        CREATE TABLE context_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)
        """,
    ),
    (
        5,
        "shared context: a keyword index of our own terms, sharded 1536-bit codes; filled in the background",
        INDEX_SCHEMA,
    ),
    (
        6,
        "dashboard: browser sessions list their device and last use",
        """
        ALTER TABLE web_sessions ADD COLUMN user_agent TEXT;
        ALTER TABLE web_sessions ADD COLUMN last_used_at TEXT;
        CREATE INDEX web_sessions_user ON web_sessions(user_id);
        """,
    ),
]
