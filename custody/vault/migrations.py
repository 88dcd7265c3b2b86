"""The catalog's schema: numbered migrations, applied in order at open (see custody.vault.catalog);
``PRAGMA user_version`` records the last one applied. A migration is never changed once shipped:
a change to the schema is a new one at the end."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the vault foundation
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256 TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        original_name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        source_path_bytes BLOB NOT NULL,
        source TEXT NOT NULL,
        source_mtime TEXT,
        recorded_start TEXT,
        recorded_end TEXT,
        ingested_at TEXT NOT NULL,
        ingested_by TEXT NOT NULL,
        key_id TEXT NOT NULL
    );
    CREATE INDEX items_when ON items (coalesce(recorded_start, ingested_at));
    CREATE TABLE tags (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER NOT NULL REFERENCES items (id),
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        set_at TEXT NOT NULL,
        set_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL
    );
    CREATE INDEX tags_current ON tags (item, name, id);
    CREATE INDEX tags_by_value ON tags (name, value, item);
    CREATE TABLE ingest_intents (
        sha256 TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        item INTEGER,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_item ON audit (item, seq);
    CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY,
        head_hash TEXT NOT NULL,
        signed_at TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    """,
    # 2: the docking station: who carries which recorder, dock sessions, what each item came from
    """
    CREATE TABLE officers (
        badge TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL
    );
    CREATE TABLE recorders (
        serial TEXT PRIMARY KEY,
        vendor TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        profile TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        retired_at TEXT
    );
    CREATE TABLE assignments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        serial TEXT NOT NULL REFERENCES recorders (serial),
        badge TEXT NOT NULL REFERENCES officers (badge),
        valid_from TEXT NOT NULL,
        valid_until TEXT,
        set_at TEXT NOT NULL,
        set_by TEXT NOT NULL
    );
    CREATE INDEX assignments_by_recorder ON assignments (serial, valid_from);
    CREATE TABLE dock_sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        serial TEXT NOT NULL,
        officer TEXT,
        device TEXT NOT NULL,
        profile TEXT NOT NULL,
        docked_at TEXT NOT NULL,
        undocked_at TEXT,
        finished_at TEXT,
        state TEXT NOT NULL,
        files_found INTEGER NOT NULL DEFAULT 0,
        files_new INTEGER NOT NULL DEFAULT 0,
        files_duplicate INTEGER NOT NULL DEFAULT 0,
        files_known INTEGER NOT NULL DEFAULT 0,
        files_failed INTEGER NOT NULL DEFAULT 0,
        files_wiped INTEGER NOT NULL DEFAULT 0,
        bytes_new INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX dock_sessions_by_recorder ON dock_sessions (serial, docked_at);
    CREATE TABLE recorder_files (
        serial TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        item INTEGER NOT NULL REFERENCES items (id),
        session INTEGER,
        wiped_at TEXT,
        PRIMARY KEY (serial, path, size, mtime_ns)
    );
    CREATE INDEX recorder_files_by_path ON recorder_files (serial, path);
    CREATE TABLE unknown_devices (
        key TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        times INTEGER NOT NULL
    );
    ALTER TABLE items ADD COLUMN recorder_serial TEXT;
    ALTER TABLE items ADD COLUMN credited_officer TEXT;
    ALTER TABLE items ADD COLUMN recorded_source TEXT;
    ALTER TABLE items ADD COLUMN docked_at TEXT;
    ALTER TABLE items ADD COLUMN deadline TEXT;
    ALTER TABLE items ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN clock_suspect INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN important INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN dock_session INTEGER;
    ALTER TABLE items ADD COLUMN previous_item INTEGER;
    CREATE INDEX items_late ON items (late, deadline);
    CREATE INDEX items_by_recorder ON items (recorder_serial, recorded_start)
    """,
    # 3: media processing: a persistent job queue and the facts ffprobe found
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        item INTEGER NOT NULL REFERENCES items (id),
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        queued_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        seconds REAL,
        UNIQUE (kind, item)
    );
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE TABLE media (
        item INTEGER PRIMARY KEY REFERENCES items (id),
        facts TEXT NOT NULL,
        probed_at TEXT NOT NULL
    );
    INSERT INTO jobs (kind, item, state, queued_at) SELECT 'media', id, 'queued', ingested_at FROM items
    """,
    # 4: derivatives (playable copies, thumbnails) and continuity findings
    """
    CREATE TABLE derivatives (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER NOT NULL REFERENCES items (id),
        role TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        method TEXT NOT NULL,
        tool TEXT NOT NULL,
        arguments TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        made_by TEXT NOT NULL,
        UNIQUE (item, role)
    );
    CREATE INDEX derivatives_by_sha256 ON derivatives (sha256);
    CREATE TABLE derivative_intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER NOT NULL,
        role TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE continuity (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        recorder_serial TEXT NOT NULL,
        officer TEXT,
        before_item INTEGER NOT NULL REFERENCES items (id),
        after_item INTEGER NOT NULL REFERENCES items (id),
        seconds REAL NOT NULL,
        found_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        closed_at TEXT,
        closed_by TEXT,
        reason TEXT,
        UNIQUE (kind, before_item, after_item)
    );
    CREATE INDEX continuity_by_state ON continuity (state, id);
    CREATE INDEX continuity_by_recorder ON continuity (recorder_serial, state);
    -- Items whose media job ran before derivatives existed get them now.
    UPDATE jobs SET state = 'queued', attempts = 0 WHERE kind = 'media' AND state = 'done'
    """,
    # 5: off-site replication: one row per object and target
    """
    CREATE TABLE replicas (
        sha256 TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        size INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        last_error TEXT,
        queued_at TEXT NOT NULL,
        uploaded_at TEXT,
        verified_at TEXT,
        verified_by TEXT,
        deep_checked_at TEXT,
        checksum TEXT,
        version_id TEXT,
        retain_until TEXT,
        legal_hold INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (sha256, target)
    );
    CREATE INDEX replicas_due ON replicas (target, state, next_attempt);
    -- How far each target's description of the vault goes (sidecars, audit, identity).
    CREATE TABLE replica_meta (
        target TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (target, name)
    )
    """,
    # 6: retention: categories on items and cases, legal holds
    """
    -- retention plans find what is due by a range on this, not by evaluating every item
    CREATE INDEX items_retention_start ON items (coalesce(recorded_start, ingested_at));
    CREATE TABLE item_categories (
        item INTEGER NOT NULL REFERENCES items (id),
        category TEXT NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        PRIMARY KEY (item, category)
    );
    CREATE TABLE case_categories (
        case_name TEXT NOT NULL,
        category TEXT NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        PRIMARY KEY (case_name, category)
    );
    CREATE TABLE holds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER REFERENCES items (id),
        case_name TEXT,
        reason TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        released_at TEXT,
        released_by TEXT,
        release_reason TEXT,
        CHECK ((item IS NULL) != (case_name IS NULL))
    );
    CREATE TABLE disposition_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL DEFAULT 'delete',
        category TEXT,
        items TEXT NOT NULL,
        reason TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        approved_at TEXT,
        approved_by TEXT,
        executed_at TEXT,
        executed_by TEXT,
        state TEXT NOT NULL DEFAULT 'requested',
        result TEXT
    );
    CREATE TABLE tombstones (
        item INTEGER PRIMARY KEY,
        record TEXT NOT NULL,
        request INTEGER NOT NULL REFERENCES disposition_requests (id),
        executed_at TEXT NOT NULL,
        executed_by TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE replica_deletions (
        sha256 TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        not_before TEXT NOT NULL,
        last_error TEXT,
        PRIMARY KEY (sha256, target)
    )
    """,
    # 7: evidence disc exports (the registry of every export, good or failed)
    """
    CREATE TABLE exports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_name TEXT NOT NULL,
        items TEXT NOT NULL,
        maker TEXT NOT NULL,
        extractor TEXT NOT NULL,
        playable INTEGER NOT NULL,
        media TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        destination TEXT NOT NULL,
        started_at TEXT NOT NULL,
        started_by TEXT NOT NULL,
        pid INTEGER,
        staging TEXT,
        finished_at TEXT,
        state TEXT NOT NULL DEFAULT 'making',
        error TEXT,
        discs TEXT NOT NULL DEFAULT '[]',
        verified_at TEXT,
        verification TEXT
    );
    CREATE INDEX exports_by_case ON exports (case_name)
    """,
    # 8: access: confidentiality of items and cases (as history), who is named on a case,
    # which login is which officer
    """
    CREATE TABLE confidentiality (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item INTEGER REFERENCES items (id),
        case_name TEXT,
        level TEXT NOT NULL,
        set_at TEXT NOT NULL,
        set_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        CHECK ((item IS NULL) != (case_name IS NULL))
    );
    CREATE INDEX confidentiality_of_item ON confidentiality (item, id);
    CREATE INDEX confidentiality_of_case ON confidentiality (case_name, id);
    CREATE TABLE case_staff (
        case_name TEXT NOT NULL,
        login TEXT NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        PRIMARY KEY (case_name, login)
    );
    CREATE TABLE officer_logins (
        badge TEXT PRIMARY KEY REFERENCES officers (badge),
        login TEXT NOT NULL UNIQUE,
        set_at TEXT NOT NULL,
        set_by TEXT NOT NULL
    )
    """,
    # 9: a file is recognised as a duplicate before it is sealed when an item of its size exists
    """
    CREATE INDEX items_by_size ON items (size)
    """,
    # 10: case files: cases with their stages, handlers and filing approval; written records
    # (documents: items with a type, a stage and a date); links between a record and the
    # footage of its act; exemptions from a required recording; archived versions. Every case
    # number already used as a tag becomes a case (its details to be completed by `case open`).
    """
    CREATE TABLE cases (
        case_name TEXT PRIMARY KEY,
        cause TEXT NOT NULL DEFAULT '',
        party TEXT NOT NULL DEFAULT '',
        party_kind TEXT NOT NULL DEFAULT 'person',
        procedure TEXT NOT NULL DEFAULT 'general',
        urgent INTEGER NOT NULL DEFAULT 0,
        started_at TEXT,
        opened_at TEXT NOT NULL,
        opened_by TEXT NOT NULL,
        stage TEXT NOT NULL DEFAULT 'initiation',
        filing_approved_by TEXT,
        filing_approved_at TEXT,
        ended_on TEXT,
        archive_due TEXT,
        closed_at TEXT,
        archived_at TEXT,
        from_tags INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE case_handlers (
        case_name TEXT NOT NULL REFERENCES cases (case_name),
        badge TEXT NOT NULL,
        PRIMARY KEY (case_name, badge)
    );
    CREATE TABLE case_stages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_name TEXT NOT NULL REFERENCES cases (case_name),
        stage TEXT NOT NULL,
        moved_at TEXT NOT NULL,
        moved_by TEXT NOT NULL,
        reason TEXT,
        audit_seq INTEGER NOT NULL
    );
    CREATE TABLE documents (
        item INTEGER PRIMARY KEY REFERENCES items (id),
        case_name TEXT NOT NULL REFERENCES cases (case_name),
        doc_type TEXT NOT NULL,
        stage TEXT NOT NULL,
        dated TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        pages INTEGER,
        people TEXT NOT NULL DEFAULT '[]',
        supplement_to INTEGER,
        filed_at TEXT NOT NULL,
        filed_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL
    );
    CREATE INDEX documents_of_case ON documents (case_name);
    CREATE TABLE case_links (
        document INTEGER NOT NULL REFERENCES documents (item),
        footage INTEGER NOT NULL REFERENCES items (id),
        linked_at TEXT NOT NULL,
        linked_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        PRIMARY KEY (document, footage)
    );
    CREATE TABLE recording_exemptions (
        document INTEGER PRIMARY KEY REFERENCES documents (item),
        reason TEXT NOT NULL,
        exempted_at TEXT NOT NULL,
        exempted_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL
    );
    CREATE TABLE case_archives (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_name TEXT NOT NULL REFERENCES cases (case_name),
        version INTEGER NOT NULL,
        -- (no reference to items: an archive outlives a record disposed of after its period)
        record_item INTEGER NOT NULL,
        record_sha256 TEXT NOT NULL,
        pdf_item INTEGER NOT NULL,
        pdf_sha256 TEXT NOT NULL,
        previous INTEGER REFERENCES case_archives (id),
        gaps TEXT NOT NULL DEFAULT '[]',
        archived_at TEXT NOT NULL,
        archived_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        UNIQUE (case_name, version)
    );
    INSERT INTO cases (case_name, opened_at, opened_by, from_tags)
        SELECT value, min(set_at), 'migration', 1 FROM tags
        WHERE name = 'case' AND value != '' GROUP BY value;
    INSERT INTO case_stages (case_name, stage, moved_at, moved_by, reason, audit_seq)
        SELECT case_name, 'initiation', opened_at, 'migration', 'a case number used as a tag', 0 FROM cases
    """,
    # 11: custody's own accounts for the web platform (people without a login on this machine):
    # the Argon2 hash of each password, never the password
    """
    CREATE TABLE accounts (
        login TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL
    )
    """,
    # 12: supervision (抽查考评): reproducible random samples of footage (the seed recorded) and the
    # review of each sampled item against the checklist; no foreign key to items: a review stays
    # a record of the supervision after its footage is disposed of
    """
    CREATE TABLE supervision_samples (
        id INTEGER PRIMARY KEY,
        officer TEXT,
        unit TEXT,
        since TEXT NOT NULL,
        until TEXT NOT NULL,
        size INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        candidates INTEGER NOT NULL,
        drawn_at TEXT NOT NULL,
        drawn_by TEXT NOT NULL,
        audit_seq INTEGER NOT NULL
    );
    CREATE TABLE supervision_reviews (
        sample INTEGER NOT NULL REFERENCES supervision_samples (id),
        item INTEGER NOT NULL,
        position INTEGER NOT NULL,
        rating TEXT,
        checks TEXT NOT NULL DEFAULT '{}',
        problems TEXT NOT NULL DEFAULT '',
        reviewed_at TEXT,
        reviewed_by TEXT,
        audit_seq INTEGER,
        PRIMARY KEY (sample, item)
    );
    CREATE INDEX supervision_reviews_item ON supervision_reviews (item);
    """,
    # 13: alerts: the conditions in force as last evaluated (and when each was said), and the
    # outbox of messages per channel until sent (retried with backoff)
    """
    CREATE TABLE alert_conditions (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        text TEXT NOT NULL,
        fired_at TEXT NOT NULL,
        last_said_at TEXT NOT NULL,
        resolved_at TEXT
    );
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        subject TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        sent_at TEXT,
        last_error TEXT
    );
    CREATE INDEX alert_outbox_due ON alert_outbox (channel, sent_at, next_attempt);
    """,
    # 14: the content a tombstone names, found at ingest (content disposed of is not taken in again)
    """
    CREATE INDEX tombstones_sha256 ON tombstones (json_extract(record, '$.sha256'));
    """,
]
