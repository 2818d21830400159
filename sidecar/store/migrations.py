"""Forward-only schema migrations: an ordered list of named functions (simonw/llm style).

Each migration runs in its own transaction and is recorded in ``_migrations`` with the time it
was applied; a migration that fails rolls back and stops start-up. Never edit or reorder a
migration that has shipped: append a new one. Other parts (ingest, agent) append theirs to
:data:`MIGRATIONS` in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite

from sidecar import clock

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def _run(db: aiosqlite.Connection, *statements: str) -> None:
    for sql in statements:
        await db.execute(sql)


async def m001_domain_tables(db: aiosqlite.Connection) -> None:
    """The shell's domain tables (DESIGN §3) with enums as CHECK constraints."""
    await _run(
        db,
        """CREATE TABLE clients (
            id TEXT PRIMARY KEY,
            parent_id TEXT REFERENCES clients(id),
            name TEXT NOT NULL CHECK (length(name) > 0),
            industry TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE projects (
            id TEXT PRIMARY KEY,
            client_id TEXT REFERENCES clients(id),
            name TEXT NOT NULL CHECK (length(name) > 0),
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
            ai_summary TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            project_id TEXT REFERENCES projects(id),
            title TEXT NOT NULL CHECK (length(title) > 0),
            description TEXT,
            status TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
            priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('high', 'medium', 'low')),
            assignee TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(assignee) AND json_type(assignee) = 'array'),
            due_date INTEGER,
            is_ai_suggested INTEGER NOT NULL DEFAULT 0 CHECK (is_ai_suggested IN (0, 1)),
            is_approved INTEGER NOT NULL DEFAULT 1 CHECK (is_approved IN (0, 1)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE timelines (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id),
            title TEXT NOT NULL CHECK (length(title) > 0),
            date INTEGER NOT NULL,
            is_ai_suggested INTEGER NOT NULL DEFAULT 0 CHECK (is_ai_suggested IN (0, 1)),
            is_approved INTEGER NOT NULL DEFAULT 1 CHECK (is_approved IN (0, 1)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE notes (
            id TEXT PRIMARY KEY,
            project_id TEXT REFERENCES projects(id),
            title TEXT NOT NULL CHECK (length(title) > 0),
            content TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE task_comments (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks(id),
            author TEXT NOT NULL CHECK (length(author) > 0),
            content TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        "CREATE INDEX clients_parent ON clients(parent_id)",
        "CREATE INDEX projects_client ON projects(client_id)",
        "CREATE INDEX tasks_project ON tasks(project_id)",
        "CREATE INDEX tasks_status_due ON tasks(status, due_date)",
        "CREATE INDEX tasks_due ON tasks(due_date)",
        "CREATE INDEX tasks_created ON tasks(created_at)",
        "CREATE INDEX timelines_project_date ON timelines(project_id, date)",
        "CREATE INDEX notes_project ON notes(project_id)",
        "CREATE INDEX task_comments_task ON task_comments(task_id, created_at)",
    )


async def m002_change_log(db: aiosqlite.Connection) -> None:
    """The change log: every committed change to domain data, in commit order (DESIGN §3)."""
    await _run(
        db,
        """CREATE TABLE change_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            device_id TEXT NOT NULL,
            hlc TEXT NOT NULL,
            entity TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
            fields TEXT NOT NULL CHECK (json_valid(fields)),
            origin TEXT NOT NULL DEFAULT 'local' CHECK (origin IN ('local', 'remote')),
            synced_at INTEGER
        )""",
        "CREATE INDEX change_log_entity ON change_log(entity, entity_id)",
        "CREATE INDEX change_log_unsynced ON change_log(seq) WHERE synced_at IS NULL",
    )


async def m003_meta(db: aiosqlite.Connection) -> None:
    """Key/value facts about this database, such as the device id generated once."""
    await _run(db, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


async def m004_agent(db: aiosqlite.Connection) -> None:
    """Agent threads, runs, messages, every emitted AG-UI event (for replay), user settings and
    core memory (DESIGN §4)."""
    await _run(
        db,
        """CREATE TABLE agent_threads (
            id TEXT PRIMARY KEY,
            title TEXT,
            state TEXT CHECK (state IS NULL OR json_valid(state)),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE agent_runs (
            id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES agent_threads(id),
            status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'cancelled', 'interrupted', 'error')),
            mode TEXT NOT NULL DEFAULT 'home',
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            latency_ms INTEGER,
            error_code TEXT,
            error_message TEXT,
            interrupt TEXT CHECK (interrupt IS NULL OR json_valid(interrupt)),
            started_at INTEGER NOT NULL,
            finished_at INTEGER
        )""",
        "CREATE INDEX agent_runs_thread ON agent_runs(thread_id, started_at)",
        """CREATE TABLE agent_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            thread_id TEXT NOT NULL REFERENCES agent_threads(id),
            run_id TEXT,
            role TEXT NOT NULL,
            content TEXT NOT NULL CHECK (json_valid(content)),
            model TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost REAL,
            latency_ms INTEGER,
            created_at INTEGER NOT NULL
        )""",
        "CREATE INDEX agent_messages_thread ON agent_messages(thread_id, seq)",
        """CREATE TABLE agent_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            type TEXT NOT NULL,
            event TEXT NOT NULL CHECK (json_valid(event)),
            created_at INTEGER NOT NULL
        )""",
        "CREATE INDEX agent_events_thread ON agent_events(thread_id, seq)",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL CHECK (json_valid(value)),
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE core_memory (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
    )


async def m005_ingest(db: aiosqlite.Connection) -> None:
    """Folder watching and extraction (DESIGN §5): watches, their runs, the durable per-file
    queue, and the provenance of every extracted item.

    Provenance rows are never deleted: a deleted item's row turns ``rejected`` (by trigger, in
    the deleting transaction) and keeps its fingerprint, so the item is never re-suggested from
    the same source.
    """
    await _run(
        db,
        """CREATE TABLE ingest_watches (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL CHECK (length(name) > 0),
            paths TEXT NOT NULL CHECK (json_valid(paths) AND json_type(paths) = 'array'),
            file_extensions TEXT NOT NULL CHECK (json_valid(file_extensions)),
            data_types TEXT NOT NULL CHECK (json_valid(data_types)),
            prompt_template TEXT NOT NULL DEFAULT '',
            schedule_cron TEXT,
            use_llm INTEGER NOT NULL DEFAULT 0 CHECK (use_llm IN (0, 1)),
            enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            skip_done INTEGER NOT NULL DEFAULT 0 CHECK (skip_done IN (0, 1)),
            project_id TEXT,
            auto_project_id TEXT,
            last_run_at INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE ingest_runs (
            id TEXT PRIMARY KEY,
            watch_id TEXT NOT NULL,
            trigger TEXT NOT NULL CHECK (trigger IN ('watch', 'schedule', 'manual', 'startup')),
            status TEXT NOT NULL CHECK (status IN ('running', 'success', 'partial', 'error')),
            items_processed INTEGER NOT NULL DEFAULT 0,
            items_created INTEGER NOT NULL DEFAULT 0,
            files_failed INTEGER NOT NULL DEFAULT 0,
            errors TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(errors)),
            started_at INTEGER NOT NULL,
            completed_at INTEGER
        )""",
        "CREATE INDEX ingest_runs_watch ON ingest_runs(watch_id, started_at)",
        "CREATE INDEX ingest_runs_running ON ingest_runs(status) WHERE status = 'running'",
        """CREATE TABLE ingest_files (
            id INTEGER PRIMARY KEY,
            watch_id TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error')),
            reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            sha256 TEXT,
            size INTEGER,
            mtime_ns INTEGER,
            gen INTEGER NOT NULL DEFAULT 0,
            due_at INTEGER NOT NULL DEFAULT 0,
            run_id TEXT,
            items_created INTEGER NOT NULL DEFAULT 0,
            extractor TEXT,
            queued_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE (watch_id, path)
        )""",
        "CREATE INDEX ingest_files_queue ON ingest_files(status, attempts, due_at)",
        "CREATE INDEX ingest_files_run ON ingest_files(run_id, status)",
        "CREATE INDEX ingest_files_path ON ingest_files(path)",
        """CREATE TABLE ingest_provenance (
            id INTEGER PRIMARY KEY,
            source_path TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            entity TEXT NOT NULL CHECK (entity IN ('tasks', 'timelines', 'notes')),
            entity_id TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            span_start INTEGER NOT NULL,
            span_end INTEGER NOT NULL,
            line_start INTEGER,
            line_end INTEGER,
            extractor TEXT NOT NULL,
            extractor_version TEXT NOT NULL,
            watch_id TEXT NOT NULL,
            run_id TEXT,
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'missing', 'rejected')),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE (source_path, fingerprint)
        )""",
        "CREATE INDEX ingest_provenance_sha ON ingest_provenance(content_sha256)",
        "CREATE INDEX ingest_provenance_entity ON ingest_provenance(entity, entity_id)",
        *(
            f"""CREATE TRIGGER ingest_provenance_rejected_{table} AFTER DELETE ON {table}
            BEGIN
                UPDATE ingest_provenance SET state = 'rejected'
                WHERE entity = '{table}' AND entity_id = OLD.id;
            END"""
            for table in ("tasks", "timelines", "notes")
        ),
    )


async def m006_list_indexes(db: aiosqlite.Connection) -> None:
    """Indexes for the list orderings ("due date, undated last") used by the app and the agent."""
    await _run(
        db,
        "CREATE INDEX tasks_due_nulls_last ON tasks(due_date IS NULL, due_date)",
        "CREATE INDEX tasks_status_due_nulls_last ON tasks(status, due_date IS NULL, due_date)",
        "CREATE INDEX tasks_project_due_nulls_last ON tasks(project_id, due_date IS NULL, due_date)",
    )


async def m007_search(db: aiosqlite.Connection) -> None:
    """Search and memory (DESIGN §6): the index's cursors, the text of watched files for the
    index, and the agent's memory (text encrypted; see :mod:`sidecar.search.memory`).

    - ``search_cursors``: per LanceDB table, the change-log ``seq`` and ``search_files.version``
      it has committed up to; the row ``name = 'active'`` names the table searches read.
    - ``search_files``: one row per watched file's parsed text (``text`` NULL: a tombstone once
      the file is gone); ``version`` increases on every change (the files feed's sequence).
    - ``memories``: tier, an optional key (core), nonce + AEAD ciphertext of the text, a keyed
      digest for near-duplicate detection, where it came from, confidence and use counts.
    """
    await _run(
        db,
        """CREATE TABLE search_cursors (
            name TEXT PRIMARY KEY,
            seq INTEGER NOT NULL DEFAULT 0,
            files_version INTEGER NOT NULL DEFAULT 0,
            table_name TEXT,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE search_files (
            path TEXT PRIMARY KEY,
            file_id TEXT NOT NULL UNIQUE,
            watch_id TEXT,
            sha256 TEXT,
            title TEXT,
            text TEXT,
            doc_date INTEGER,
            version INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX search_files_version ON search_files(version)",
        """CREATE TABLE memories (
            id TEXT PRIMARY KEY,
            tier TEXT NOT NULL CHECK (tier IN ('core', 'episodic', 'associative', 'proactive')),
            key TEXT,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            digest TEXT NOT NULL,
            thread_id TEXT,
            run_id TEXT,
            confidence REAL,
            hits INTEGER NOT NULL DEFAULT 1,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX memories_tier ON memories(tier, updated_at)",
        "CREATE UNIQUE INDEX memories_core_key ON memories(key) WHERE tier = 'core'",
        "CREATE INDEX memories_digest ON memories(tier, digest)",
    )


async def m008_sync(db: aiosqlite.Connection) -> None:
    """Cloud sync bookkeeping (DESIGN §6, ``sidecar/sync/state.py`` explains each table)."""
    await _run(
        db,
        """CREATE TABLE sync_outbox (
            seq INTEGER PRIMARY KEY,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            event_count INTEGER NOT NULL,
            plain_bytes INTEGER NOT NULL,
            blob BLOB NOT NULL,
            checksum TEXT NOT NULL,
            record_id TEXT,
            created_at INTEGER NOT NULL,
            acked_at INTEGER,
            parked_reason TEXT
        )""",
        """CREATE TABLE sync_records (
            record_id TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            device_id TEXT,
            batch_seq INTEGER,
            checksum TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('applied', 'own', 'duplicate', 'quarantined', 'held')),
            reason TEXT,
            blob BLOB,
            seen_at INTEGER NOT NULL
        )""",
        "CREATE INDEX sync_records_held ON sync_records(device_id, batch_seq) WHERE status = 'held'",
        """CREATE TABLE sync_batches (
            device_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            record_id TEXT NOT NULL,
            applied_at INTEGER NOT NULL,
            PRIMARY KEY (device_id, seq)
        )""",
    )


async def m009_journey(db: aiosqlite.Connection) -> None:
    """Setup-journey sessions (``sidecar/ingest/journey.py``): the conversation that writes a
    watch's prompt template, kept so a session survives a restart."""
    await _run(
        db,
        """CREATE TABLE ingest_journeys (
            id TEXT PRIMARY KEY,
            watch_id TEXT,
            transcript TEXT NOT NULL CHECK (json_valid(transcript) AND json_type(transcript) = 'array'),
            questions INTEGER NOT NULL DEFAULT 0 CHECK (questions >= 0),
            done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
            prompt_template TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_domain_tables", m001_domain_tables),
    ("002_change_log", m002_change_log),
    ("003_meta", m003_meta),
    ("004_agent", m004_agent),
    ("005_ingest", m005_ingest),
    ("006_list_indexes", m006_list_indexes),
    ("007_search", m007_search),
    ("008_sync", m008_sync),
    ("009_journey", m009_journey),
]


async def migrate(db: aiosqlite.Connection, migrations: list[tuple[str, Migration]] | None = None) -> list[str]:
    """Apply every migration not yet recorded, in order, each in its own transaction.

    Returns the names applied now. Raises whatever a migration raises (after rolling it back).
    """
    await db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    async with db.execute("SELECT name FROM _migrations") as cur:
        done = {row[0] for row in await cur.fetchall()}
    applied = []
    for name, fn in migrations if migrations is not None else MIGRATIONS:
        if name in done:
            continue
        await db.execute("BEGIN IMMEDIATE")
        try:
            await fn(db)
            await db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, clock.now_ms())
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
