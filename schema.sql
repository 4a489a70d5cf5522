-- wardcrf database schema: the one definition of every table.
--
-- The file is a sequence of named migrations. Each starts with a line
-- "-- migration: NAME" and is applied once, in file order, inside one
-- transaction, and recorded in schema_migrations. Never change what a
-- migration that has shipped does; append a new one.
--
-- The insert-only tables (event log, evidence, transparency log) are listed
-- in wardcrf/store.py APPEND_ONLY, which owns their triggers refusing UPDATE
-- and DELETE: the store creates them in the transaction of the migration that
-- creates (or rebuilds) the table, with the names, text and messages these
-- migrations stated when they shipped (tests/unit/test_schema_guards.py).

-- migration: 0001-foundation
CREATE TABLE schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
);

-- Site identity. Exactly one row. Written once at init.
CREATE TABLE site (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    device_name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ward', 'hub')),
    zone TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The event log: the source record. Append-only (APPEND_ONLY triggers).
-- `line` holds the canonical JSON line exactly as it travels in bundles; the
-- other columns are copies of fields inside it, kept for indexing and checked
-- against the line by `audit verify`.
CREATE TABLE events (
    pos INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    hlc TEXT NOT NULL,
    ts TEXT NOT NULL,
    user TEXT,
    type TEXT NOT NULL,
    subject TEXT,
    amends TEXT,
    line TEXT NOT NULL,
    UNIQUE (device, seq)
);
CREATE INDEX events_subject ON events (subject);
CREATE INDEX events_amends ON events (amends) WHERE amends IS NOT NULL;
CREATE INDEX events_type ON events (type);

-- events_no_update and events_no_delete: wardcrf/store.py APPEND_ONLY (created with the table).

-- The head of each device's chain, updated in the same transaction as every
-- append. Lets `audit verify` notice a log truncated at its tail.
CREATE TABLE chain_heads (
    device TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    hlc TEXT NOT NULL
);

-- Device keys (sync signing and age identities), inside the encrypted DB.
CREATE TABLE device_keys (
    device TEXT PRIMARY KEY,
    sign_secret TEXT NOT NULL,
    sign_public TEXT NOT NULL,
    key_id TEXT NOT NULL,
    age_identity TEXT NOT NULL,
    age_recipient TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Projection: users. Derived from user.* events.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    locked INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    language TEXT NOT NULL DEFAULT 'en',
    created_event TEXT NOT NULL,
    updated_event TEXT NOT NULL
);

-- Projection: e-signatures. `signed_hash` is the hash of what was signed.
CREATE TABLE signatures (
    event_id TEXT PRIMARY KEY,
    target_event TEXT NOT NULL,
    subject TEXT,
    signed_hash TEXT NOT NULL,
    meaning TEXT NOT NULL,
    user_id TEXT NOT NULL,
    full_name TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
CREATE INDEX signatures_target ON signatures (target_event);
CREATE INDEX signatures_subject ON signatures (subject);

-- Projection: amendments, old -> new per field, with reason.
CREATE TABLE amendments (
    event_id TEXT NOT NULL,
    target_event TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT NOT NULL,
    user_id TEXT,
    ts TEXT NOT NULL,
    PRIMARY KEY (event_id, field)
);
CREATE INDEX amendments_target ON amendments (target_event);

-- Projection: current value of every record (form submission), after
-- amendments. `data` is the JSON of current field values.
CREATE TABLE records (
    event_id TEXT PRIMARY KEY,
    form TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL,
    field_hlc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    last_event TEXT NOT NULL,
    last_hlc TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX records_form ON records (form, subject);
CREATE INDEX records_subject ON records (subject);

-- Projection: protocol versions loaded on this site (the TOML travels in
-- the protocol.loaded event, so every version stays part of the record).
CREATE TABLE protocols (
    protocol_id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    loaded_event TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (protocol_id, version)
);

-- migration: 0004-photos
-- Photo evidence (issue 4). The original bytes live here, inside the
-- encrypted database, named by their SHA-256: atomic with the event that
-- records their import, and covered by every backup. Never updated or
-- deleted through wardcrf (triggers); `photo verify` and `audit verify`
-- re-hash every blob, so an edit made around wardcrf is caught.
CREATE TABLE photo_blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
-- photo_blobs_no_update and photo_blobs_no_delete: wardcrf/store.py APPEND_ONLY (created with the table).

-- Derived previews (downscaled JPEG, no EXIF): a display cache, rebuilt from
-- the original when missing. Never evidence.
CREATE TABLE photo_previews (
    sha256 TEXT PRIMARY KEY,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);

-- Projection: photo metadata from photo.imported events (the first import
-- of a hash wins; re-imports elsewhere change nothing).
CREATE TABLE photos (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    captured_at TEXT,
    camera TEXT,
    name TEXT,
    has_gps INTEGER NOT NULL DEFAULT 0,
    imported_event TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    imported_by TEXT
);

-- Projection: which record field binds which photo, from which event, and
-- (after an amendment swapped it) which event unbound it. Rows are never
-- removed: the history of a record's photos stays visible.
CREATE TABLE photo_bindings (
    record_event TEXT NOT NULL,
    field TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bound_event TEXT NOT NULL,
    bound_by TEXT,
    bound_at TEXT NOT NULL,
    unbound_event TEXT,
    unbound_by TEXT,
    unbound_at TEXT,
    PRIMARY KEY (record_event, field, sha256, bound_event)
);
CREATE INDEX photo_bindings_sha ON photo_bindings (sha256);

-- migration: 0010-workflow
-- Projections of the clinical workflow (wardcrf.workflow), filled by form
-- hooks from records: re-derived by `db rebuild` like every projection.
-- Columns are nullable: records written by other means (older protocol
-- versions, other devices) must always project, never fail.
CREATE TABLE participants (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL,
    consent_event TEXT,
    consent_time TEXT,
    consent_version TEXT,
    screening_event TEXT,
    screening_date TEXT,
    sex TEXT,
    dob TEXT,
    eligible INTEGER,
    failed_criteria TEXT,
    enrollment_event TEXT,
    enrolled_on TEXT
);

CREATE TABLE doses (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    dose_number INTEGER,
    kit_id TEXT,
    lot TEXT,
    particles REAL,
    volume_ml REAL,
    start TEXT,
    end TEXT,
    given_by TEXT,
    day INTEGER,
    due TEXT,
    window TEXT
);
CREATE INDEX doses_participant ON doses (participant, dose_number);
CREATE INDEX doses_kit ON doses (kit_id);

CREATE TABLE vitals (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    timepoint TEXT,
    dose INTEGER,
    time TEXT,
    temp REAL,
    pulse INTEGER,
    resp INTEGER,
    oxysat INTEGER,
    sysbp INTEGER,
    diabp INTEGER
);
CREATE INDEX vitals_participant ON vitals (participant, time);

CREATE TABLE adverse_events (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    term TEXT,
    prespecified TEXT,
    onset TEXT,
    end TEXT,
    grade INTEGER,
    serious INTEGER,
    causality TEXT,
    outcome TEXT,
    first_known TEXT,
    report_due TEXT
);
CREATE INDEX adverse_events_participant ON adverse_events (participant);
-- migration: 0011-coldchain
-- Cold chain. Projections (cc_* except cc_evidence and cc_readings) are
-- derived from events by wardcrf.coldchain.projections. cc_evidence holds
-- the original logger files (source records: kept byte for byte, hashed, checked
-- by `audit verify`); cc_readings is an index of the readings in those files,
-- written with the import event in one transaction and re-derivable from
-- cc_evidence, so it is not a projection of the event log.
CREATE TABLE cc_evidence (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    stored_at TEXT NOT NULL
);
-- cc_evidence_no_update and cc_evidence_no_delete: wardcrf/store.py APPEND_ONLY (created with the table).

CREATE TABLE cc_readings (
    unit_id TEXT NOT NULL,
    t INTEGER NOT NULL,
    temp_c REAL NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (unit_id, t)
) WITHOUT ROWID;

CREATE TABLE cc_units (
    unit_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    low_c REAL NOT NULL,
    high_c REAL NOT NULL,
    target_c REAL,
    zone TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    event_id TEXT NOT NULL
);

CREATE TABLE cc_lots (
    lot TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    expiry TEXT NOT NULL,
    release_ref TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    event_id TEXT NOT NULL
);

CREATE TABLE cc_kits (
    kit_id TEXT PRIMARY KEY,
    lot TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE INDEX cc_kits_lot ON cc_kits (lot);

-- Receipts and handovers: one row per custody step (a receipt is the first).
CREATE TABLE cc_transfers (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'handover')),
    at INTEGER NOT NULL,
    from_party TEXT NOT NULL,
    from_user TEXT,
    to_party TEXT NOT NULL,
    to_user TEXT,
    from_location TEXT NOT NULL,
    to_location TEXT NOT NULL,
    condition TEXT,
    photos TEXT NOT NULL,
    kits TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE cc_custody (
    event_id TEXT NOT NULL,
    kit_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, kit_id)
);
CREATE INDEX cc_custody_kit ON cc_custody (kit_id, at);

CREATE TABLE cc_logger_files (
    event_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    unit_id TEXT,
    format TEXT NOT NULL,
    serial TEXT,
    first_t INTEGER NOT NULL,
    last_t INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    summary TEXT NOT NULL
);

CREATE TABLE cc_manual_readings (
    event_id TEXT PRIMARY KEY,
    unit_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    temp_c REAL NOT NULL,
    by_user TEXT
);

-- Excursions: out-of-range spans in a unit (logger or manual reading), or a
-- receipt whose arrival condition or transit log failed (scope 'receipt').
CREATE TABLE cc_excursions (
    excursion_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('unit', 'receipt')),
    kind TEXT NOT NULL,
    unit_id TEXT,
    receipt_event TEXT,
    start_t INTEGER NOT NULL,
    end_t INTEGER NOT NULL,
    min_c REAL,
    max_c REAL,
    is_open INTEGER NOT NULL DEFAULT 0,
    source_event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX cc_excursions_unit ON cc_excursions (unit_id, start_t);

CREATE TABLE cc_dispositions (
    excursion_id TEXT NOT NULL,
    kit_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('release', 'discard')),
    reason TEXT NOT NULL,
    by_user TEXT,
    event_id TEXT NOT NULL,
    PRIMARY KEY (excursion_id, kit_id)
);

CREATE TABLE cc_thaws (
    event_id TEXT PRIMARY KEY,
    kit_id TEXT NOT NULL,
    start_t INTEGER NOT NULL,
    end_t INTEGER NOT NULL,
    by_user TEXT,
    reconstitution TEXT
);
CREATE INDEX cc_thaws_kit ON cc_thaws (kit_id);
-- migration: 0060-sync
-- Projection: devices a hub (or a ward, from the hub's chain) knows, from
-- hub.device_registered / hub.device_retired / sync.fork_detected events.
CREATE TABLE sync_devices (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    sign_public TEXT NOT NULL,
    key_id TEXT NOT NULL,
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'flagged', 'retired')),
    flag_reason TEXT,
    replaces TEXT,
    registered_event TEXT NOT NULL,
    updated_event TEXT NOT NULL
);
CREATE INDEX sync_devices_key ON sync_devices (key_id);

-- Projection: the hub this site trusts (sync.hub_set) and extra age
-- recipients such as auditors (sync.recipient_added).
CREATE TABLE sync_hub (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    sign_public TEXT NOT NULL,
    key_id TEXT NOT NULL,
    age_recipient TEXT NOT NULL,
    url TEXT,
    set_event TEXT NOT NULL
);
CREATE TABLE sync_recipients (
    age_recipient TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    added_event TEXT NOT NULL
);

-- Projection: data queries (hub asks about a field; ward answers; hub closes).
CREATE TABLE sync_queries (
    query_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    target_event TEXT NOT NULL,
    field TEXT NOT NULL,
    question TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    raised_by TEXT,
    answer_event TEXT,
    answer TEXT,
    closed_event TEXT
);
CREATE INDEX sync_queries_site ON sync_queries (site, status);

-- Projection: DSMG decisions sent from the hub to sites.
CREATE TABLE sync_decisions (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    decision TEXT NOT NULL,
    detail TEXT NOT NULL,
    decided_by TEXT,
    ts TEXT NOT NULL
);

-- Transport state of this copy (not projections: they describe what this
-- database sent and received, not the record; `db rebuild` leaves them).
-- Bundles this device built for a peer (ward -> hub, or hub -> one ward).
CREATE TABLE sync_outbox (
    peer TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    chain_last TEXT NOT NULL,
    manifest TEXT NOT NULL,
    manifest_sha TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    receipted_at TEXT,
    PRIMARY KEY (peer, bundle_seq)
);
-- Bundles applied here, per signing device: replay and fork detection.
CREATE TABLE sync_applied (
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    chain_last TEXT NOT NULL,
    file TEXT,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (device, bundle_seq)
);
-- Bundles held: out of order (gap) until the gap fills, or forks for a coordinator.
CREATE TABLE sync_held (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('gap', 'fork')),
    file TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (device, bundle_seq, manifest_sha)
);
-- Receipts received from the hub, and what the hub told this ward.
CREATE TABLE sync_receipts (
    id INTEGER PRIMARY KEY,
    hub TEXT NOT NULL,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE sync_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- migration: 0061-sync-held-clash
-- A bundle can also be held because it would merge two different participants
-- under one id (reason 'clash', see docs/sync.md). SQLite cannot widen a CHECK
-- in place, so the table is copied into one that allows the new reason.
CREATE TABLE sync_held_v2 (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('gap', 'fork', 'clash')),
    file TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (device, bundle_seq, manifest_sha)
);
INSERT INTO sync_held_v2 (id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at)
    SELECT id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at FROM sync_held;
DROP TABLE sync_held;
ALTER TABLE sync_held_v2 RENAME TO sync_held;

-- migration: 0062-cc-reading-conflicts
-- Where logs of several laptops meet (hub, replacement laptop), two logger files
-- may give one unit different temperatures at the same instant. The readings
-- index keeps the first (in log order, as a ward does); each disagreeing value
-- is listed here. Like cc_readings, re-derived from cc_evidence (db rebuild).
CREATE TABLE cc_reading_conflicts (
    unit_id TEXT NOT NULL,
    t INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    temp_c REAL NOT NULL,
    kept_sha256 TEXT NOT NULL,
    kept_temp_c REAL NOT NULL,
    PRIMARY KEY (unit_id, t, sha256)
) WITHOUT ROWID;

-- migration: 0070-events-hash-not-unique
-- The events table again, without the UNIQUE constraint on `hash` (SQLite
-- cannot drop a constraint's index, so the table is rebuilt; rows, `pos`,
-- indexes and the append-only triggers are kept as they were).
-- Why: event hashes are random keys, so their unique index took inserts at
-- random pages: a hub importing a 10,000-event bundle dirtied thousands of
-- pages of it, which SQLCipher encrypted, wrote to the WAL and checkpointed
-- again (a third of the time of a 100-device import). Nothing looks events
-- up by hash, and uniqueness still holds: a line carries its device, seq
-- and id, which are UNIQUE, and its hash is the SHA-256 of that line, which
-- `audit verify` recomputes for every event (two events with one hash would
-- be a SHA-256 collision). Chains are still checked link by link.
CREATE TABLE events_rebuilt (
    pos INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    hlc TEXT NOT NULL,
    ts TEXT NOT NULL,
    user TEXT,
    type TEXT NOT NULL,
    subject TEXT,
    amends TEXT,
    line TEXT NOT NULL,
    UNIQUE (device, seq)
);
INSERT INTO events_rebuilt (pos, id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line)
    SELECT pos, id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line FROM events ORDER BY pos;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
CREATE INDEX events_subject ON events (subject);
CREATE INDEX events_amends ON events (amends) WHERE amends IS NOT NULL;
CREATE INDEX events_type ON events (type);
-- events_no_update and events_no_delete: wardcrf/store.py APPEND_ONLY (created with the table).

-- migration: 0080-photo-archive
-- At a hub, a photo's original stays inside the signed, age-encrypted bundle
-- that brought it (kept under <data_dir>/sync/applied/ as the original
-- record); this row says where. Copying every photo into the database as
-- well held the same evidence twice and made each import re-encrypt it page
-- by page. Reads decrypt the kept bundle and re-hash the bytes, as every read
-- of evidence does. Insert-only, like photo_blobs; wards keep photo_blobs.
CREATE TABLE photo_archive (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    bundle TEXT NOT NULL,          -- kept bundle file, relative to <data_dir>/sync
    member TEXT NOT NULL,          -- photos/<sha256>.<ext>
    data_offset INTEGER NOT NULL,  -- first byte of the member's data in the decrypted archive
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL
);
-- photo_archive_no_update and photo_archive_no_delete: wardcrf/store.py APPEND_ONLY (created with the table).

-- migration: 0090-sync-refusals
-- Bundles the hub refused from a registered device (bad content behind a
-- good signature: authority, schema, chain), one row per `sync.bundle_refused`
-- event, so `hub status` shows what was refused, why and from which device.
CREATE TABLE sync_refusals (
    event_id TEXT PRIMARY KEY,
    device TEXT,
    site TEXT,
    bundle_seq INTEGER,
    file TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX sync_refusals_device ON sync_refusals (device, file);

-- migration: 0091-sync-held-sequencing
-- A bundle whose records break the protocol's sequencing (a record with no
-- consent signed by three people before it) is held too (reason 'sequencing',
-- docs/sync.md). The CHECK is widened by copying the table, as in 0061.
CREATE TABLE sync_held_v3 (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('gap', 'fork', 'clash', 'sequencing')),
    file TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (device, bundle_seq, manifest_sha)
);
INSERT INTO sync_held_v3 (id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at)
    SELECT id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at FROM sync_held;
DROP TABLE sync_held;
ALTER TABLE sync_held_v3 RENAME TO sync_held;

-- migration: 0090-rollback-guard
-- A counter bumped by every committed write transaction and mirrored, after the
-- commit, in wardcrf.counter beside the key slots (wardcrf/rollback.py): an older
-- copy of this file put in place of a newer one is found at the next sign-in.
CREATE TABLE rollback_guard (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    counter INTEGER NOT NULL
);
INSERT INTO rollback_guard (id, counter) VALUES (1, 0);

-- migration: 0090-id-keys
-- Kit ids and lot numbers are compared by their key (wardcrf.ids: control
-- characters dropped, NFKC, trimmed, upper case). The doses projection
-- stores keys from now on, so "kit already used" (workflow.dosing.kit_use)
-- finds a dose recorded as `kit-x1` when `KIT-X1` is scanned. Rows projected
-- before are re-keyed here (their ids passed the old ASCII-only rule, so
-- upper(trim()) is their key). The event log is never rewritten: it keeps
-- what was typed, and `db rebuild` derives the same keys.
UPDATE doses SET kit_id = upper(trim(kit_id)) WHERE kit_id IS NOT NULL;
UPDATE doses SET lot = upper(trim(lot)) WHERE lot IS NOT NULL;

-- migration: 0091-drafts
-- Drafts (wardcrf.drafts): what one person has typed into a form that is not
-- saved yet, so nothing typed is lost to Esc, a lock, a crash or a power cut.
-- Not an event and not a record: never synced, exported or carried by a
-- backup, untouched by `db rebuild`. One row per user and form context,
-- replaced at every save (after each field) in one small transaction; deleted
-- when the form is saved or discarded, or purged by an admin (the purge is a
-- `draft.purged` event naming the owner and the count, never the content).
CREATE TABLE drafts (
    user TEXT NOT NULL,
    form TEXT NOT NULL,               -- a protocol form, or a screen's form (coldchain.receipt, dose_visit)
    context TEXT NOT NULL DEFAULT '', -- what the form is about: participant:WUH01-001, an amended record, ...
    format INTEGER NOT NULL,          -- layout of `fields` (1: JSON object field -> value as typed)
    fields TEXT NOT NULL,
    focus TEXT,                       -- the field that had the cursor
    protocol_id TEXT,                 -- the protocol version the form was opened under
    protocol_version TEXT,
    created_at TEXT NOT NULL,         -- first save (UTC)
    saved_at TEXT NOT NULL,           -- last save (UTC)
    saves INTEGER NOT NULL,
    PRIMARY KEY (user, form, context)
);

-- migration: 0180-coding
-- Medical coding (issue 18). The terms of each dictionary version loaded on
-- this device (MedDRA LLTs with their primary path; WHODrug drug codes with
-- their preferred name and ATC classes) are reference data, not projections:
-- the dictionaries are licensed and large, so their terms never travel in
-- events or bundles and never leave in a plain copy. The
-- `coding.dictionary_loaded` event records who loaded which version from
-- which files (SHA-256 of each); a `coding.coded` event carries every code
-- and name it assigns, so a site without the dictionary still reads them.
CREATE TABLE coding_meddra (
    version TEXT NOT NULL,
    llt_code INTEGER NOT NULL,
    llt_name TEXT NOT NULL,
    llt_current INTEGER NOT NULL,
    pt_code INTEGER NOT NULL,
    pt_name TEXT NOT NULL,
    hlt_code INTEGER NOT NULL,
    hlt_name TEXT NOT NULL,
    hlgt_code INTEGER NOT NULL,
    hlgt_name TEXT NOT NULL,
    soc_code INTEGER NOT NULL,
    soc_name TEXT NOT NULL,
    soc_abbrev TEXT NOT NULL,
    PRIMARY KEY (version, llt_code)
) WITHOUT ROWID;
CREATE INDEX coding_meddra_name ON coding_meddra (version, llt_name COLLATE NOCASE);
CREATE TABLE coding_whodrug (
    version TEXT NOT NULL,
    drug_code TEXT NOT NULL,
    drug_name TEXT NOT NULL,
    preferred_code TEXT NOT NULL,
    preferred_name TEXT NOT NULL,
    atc TEXT NOT NULL,              -- JSON list of [ATC code, text]
    PRIMARY KEY (version, drug_code)
) WITHOUT ROWID;
CREATE INDEX coding_whodrug_name ON coding_whodrug (version, drug_name COLLATE NOCASE);

-- Projection: dictionary versions loaded, per device (coding.dictionary_loaded).
CREATE TABLE coding_dictionaries (
    dictionary TEXT NOT NULL,
    version TEXT NOT NULL,
    device TEXT NOT NULL,
    language TEXT,
    loaded_event TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    loaded_by TEXT,
    files TEXT NOT NULL,            -- JSON {file name: {sha256, bytes, encoding}}
    terms INTEGER NOT NULL,
    PRIMARY KEY (dictionary, version, device)
);

-- Projection: the current coding of each coded field (coding.coded). The
-- newest coding by hybrid logical clock wins, so every device that holds the
-- same events shows the same coding whatever order they arrived in.
CREATE TABLE codings (
    record_event TEXT NOT NULL,
    field TEXT NOT NULL,
    coding_event TEXT NOT NULL,
    subject TEXT,
    form TEXT NOT NULL,
    verbatim TEXT NOT NULL,
    dictionary TEXT NOT NULL,
    version TEXT NOT NULL,
    codes TEXT NOT NULL,            -- JSON: every level's code and name
    coded_by TEXT,
    coded_at TEXT NOT NULL,
    hlc TEXT NOT NULL,
    codings INTEGER NOT NULL,       -- how many coding events this field has had
    PRIMARY KEY (record_event, field)
);

-- migration: 0220-sdv
-- Projection of sdv.verified events (wardcrf.sdv): one row per verification a monitor
-- signed, with the fields it covers, each field value's SHA-256 as verified and the source
-- photographs compared. Rows are never removed: a field's state is computed from the latest
-- mark and the amendments after it (by HLC), so the history of verifications stays.
CREATE TABLE sdv_marks (
    event_id TEXT PRIMARY KEY,
    target_event TEXT NOT NULL,
    subject TEXT,
    form TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('record', 'fields')),
    fields TEXT NOT NULL,
    value_hashes TEXT NOT NULL,
    sources TEXT NOT NULL,
    user_id TEXT NOT NULL,
    full_name TEXT NOT NULL,
    at TEXT NOT NULL,
    hlc TEXT NOT NULL
);
CREATE INDEX sdv_marks_target ON sdv_marks (target_event, hlc);

-- migration: 0300-counters
-- Counters and indexed summaries that keep the first screens' cost flat as a
-- site grows (issue 19). Projections: maintained in the transaction of the
-- events that change them, cleared and re-derived by `db rebuild`, compared by
-- `db rebuild --check`.
--
-- counters: named totals (the participants on the site).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- ward_queue: one row per participant, what orders the ward list without
-- reading every participant: the next dose and its due time (UTC, under the
-- active protocol's schedule; NULL when none is due: not enrolled or done),
-- a hold of the participant's own (no longer eligible, a positive skin test),
-- and the doses given whose post-dose vitals are still owed.
CREATE TABLE ward_queue (
    participant TEXT PRIMARY KEY,
    next_dose INTEGER,
    next_due TEXT,
    held INTEGER NOT NULL DEFAULT 0,
    vitals_owed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ward_queue_due ON ward_queue (held, next_due) WHERE next_due IS NOT NULL;
CREATE INDEX ward_queue_owed ON ward_queue (participant) WHERE vitals_owed > 0;
CREATE INDEX ward_queue_rest ON ward_queue (participant) WHERE next_due IS NULL AND vitals_owed = 0;
CREATE INDEX ward_queue_waiting ON ward_queue (participant) WHERE next_due IS NOT NULL AND vitals_owed = 0;
-- photo_first_refs: each photo a device's events reference (or carry, in
-- `photo.imported`), at the first event that does, numbered in that device's
-- order: the photos its unreceipted events bring to the hub are two lookups.
CREATE TABLE photo_first_refs (
    device TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    PRIMARY KEY (device, sha256)
);
CREATE INDEX photo_first_refs_seq ON photo_first_refs (device, seq, ordinal);

-- migration: 0400-tlog
-- The hub's transparency log (issue 21, sync/hublog.py): every bundle the hub
-- applies or holds is a leaf of one append-only RFC 9162 Merkle tree, and the
-- hub signs a C2SP checkpoint of the tree after every import. Not projections:
-- the log *is* the order things arrived in, so `db rebuild` never touches it,
-- and like the event log nothing in it is updated or deleted.
--
-- tlog_leaves: one per bundle outcome, in arrival order (idx from 0); `leaf`
-- is the RFC 9162 leaf hash (hex) of the leaf's canonical text.
CREATE TABLE tlog_leaves (
    idx INTEGER PRIMARY KEY,
    leaf TEXT NOT NULL,
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    status TEXT NOT NULL,
    logged_at TEXT NOT NULL
);
CREATE INDEX tlog_leaves_device ON tlog_leaves (device, idx);
-- tlog_nodes: the root of every perfect subtree (2**level leaves from
-- idx * 2**level), so any proof is O(log^2 n) lookups, never a pass over leaves.
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
-- tlog_checkpoints: every checkpoint the hub signed (the signed note as text).
CREATE TABLE tlog_checkpoints (
    size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    signed_at TEXT NOT NULL
);
-- tlog_sent: which checkpoint each receipt carried to a device, so the next
-- receipt can prove consistency from the one the ward holds.
CREATE TABLE tlog_sent (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    size INTEGER NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX tlog_sent_device ON tlog_sent (device, id);
-- tlog_leaves, tlog_nodes and tlog_checkpoints refuse UPDATE and DELETE: wardcrf/store.py APPEND_ONLY
-- (their *_no_update and *_no_delete triggers are created with the tables).
-- The ward's side: the last hub checkpoint it verified (size, root, note).
CREATE TABLE tlog_seen (
    hub TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    seen_at TEXT NOT NULL
);

-- migration: 0345-sync-held-kit
-- A bundle whose dose gives a kit another dose already used (two laptops, or a
-- version that compared kit ids as typed) is held for the coordinator (reason
-- 'kit', docs/sync.md; issue 14). The CHECK is widened by copying the table, as in 0091.
CREATE TABLE sync_held_v4 (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    bundle_seq INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('gap', 'fork', 'clash', 'sequencing', 'kit')),
    file TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (device, bundle_seq, manifest_sha)
);
INSERT INTO sync_held_v4 (id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at)
    SELECT id, device, bundle_seq, manifest_sha, reason, file, detail, received_at, resolved_at FROM sync_held;
DROP TABLE sync_held;
ALTER TABLE sync_held_v4 RENAME TO sync_held;

-- migration: 0310-sync-panel-indexes
-- The sync panel without reading the sync history: the bundles a hub has not
-- receipted yet are counted through this index (they are the newest few), and
-- a device's last receipt is one lookup, not a walk back through every receipt.
CREATE INDEX sync_outbox_unreceipted ON sync_outbox (peer, bundle_seq) WHERE receipted_at IS NULL;
CREATE INDEX sync_receipts_device ON sync_receipts (device, id);

-- migration: 0350-protocol-encodings
-- A format-2 file re-encoding a loaded format-1 version (`protocol.reencoded`,
-- wardcrf/engine/loading.py): the engine reads it; records stay under the version.
CREATE TABLE protocol_encodings (
    protocol_id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    reencodes TEXT NOT NULL,
    source TEXT NOT NULL,
    loaded_event TEXT NOT NULL,
    PRIMARY KEY (protocol_id, version)
);

-- migration: 0500-randomization
-- Allocation lists received from the hub (`randomization.list_issued`), their sealed
-- entries, the allocations taken from them, emergency unblindings, exhausted strata and,
-- at the hub, allocations that do not follow the list (issue 20; docs/randomization.md).
-- All projections: `db rebuild` replays them from the log.
CREATE TABLE rand_lists (
    list_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    protocol_sha256 TEXT NOT NULL,
    reveal TEXT NOT NULL CHECK (reveal IN ('arm', 'kit')),
    list_sha256 TEXT NOT NULL,
    stratify_by TEXT NOT NULL,  -- JSON array, the protocol's factors
    strata TEXT NOT NULL,       -- JSON array of stratum keys (`site=WUH01;ct_np=HIGH`)
    list_key TEXT NOT NULL,     -- age-encrypted to the allocating laptop (base64)
    unblind_key TEXT,           -- blinded lists: the kit-to-arm envelopes' key, age-encrypted likewise
    unblinding TEXT NOT NULL,   -- JSON: the protocol's emergency-unblinding rules (roles, witness, reasons)
    event_id TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE rand_entries (
    list_id TEXT NOT NULL,  -- rand_lists.list_id (no FOREIGN KEY: `db rebuild` clears tables in list order)
    stratum TEXT NOT NULL,
    position INTEGER NOT NULL,
    digest TEXT NOT NULL,
    sealed TEXT NOT NULL,
    arm_digest TEXT,
    arm_sealed TEXT,
    PRIMARY KEY (list_id, stratum, position)
);
CREATE TABLE rand_allocations (
    participant TEXT PRIMARY KEY,
    list_id TEXT NOT NULL,
    stratum TEXT NOT NULL,
    position INTEGER NOT NULL,
    kit TEXT,
    arm TEXT,
    event_id TEXT NOT NULL,
    device TEXT NOT NULL,
    ts TEXT NOT NULL,
    UNIQUE (list_id, stratum, position)
);
CREATE TABLE rand_exhausted (
    event_id TEXT PRIMARY KEY,
    stratum TEXT NOT NULL,
    participant TEXT NOT NULL,
    site TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE TABLE rand_unblindings (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    arm TEXT NOT NULL,
    kit TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    user TEXT NOT NULL,
    witness TEXT,
    site TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE TABLE rand_flags (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    participant TEXT NOT NULL,
    problem TEXT NOT NULL
);

-- migration: 0510-randomization-factors
-- How the ward computes each stratum factor's level from the participant's records
-- (the list's `factors`: a recorded field, the levels' `when`, or asked); '[]' for lists
-- made before the factors travelled with them (every level then stated by the user).
ALTER TABLE rand_lists ADD COLUMN factors TEXT NOT NULL DEFAULT '[]';

-- migration: 0520-randomization-unblinding-keys
-- Each ward laptop's unblinding recipient (`randomization.unblinding_key`,
-- wardcrf/unblindkeys.py): the hub encrypts a blinded list's unblinding key to it,
-- and only key slots of roles that may unblind carry its secret. A projection.
CREATE TABLE rand_unblinding_keys (
    device TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    event_id TEXT NOT NULL
);
ALTER TABLE rand_lists ADD COLUMN unblind_recipient TEXT;  -- NULL: a list sealed to the laptop's own identity
-- 'course': a blinded list whose allocated kit serves the participant's whole course (one kit, many doses)
ALTER TABLE rand_lists ADD COLUMN kit_use TEXT NOT NULL DEFAULT 'administration';

-- migration: 0530-scanner-profile
-- How each laptop's barcode scanner ends a code (`device.scanner_set`, wardcrf/scanner.py;
-- issue 14): on Enter (the default, no row) or after a quiet gap of `gap_ms`. Keyed by the
-- device that wrote the event (its envelope), so a hub holding several laptops' events keeps
-- each one's own. A projection: `db rebuild` replays it from the log.
CREATE TABLE device_scanner (
    device TEXT PRIMARY KEY,
    ends TEXT NOT NULL CHECK (ends IN ('enter', 'gap')),
    gap_ms INTEGER,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    set_event TEXT NOT NULL
);

-- migration: 0540-protocol-applied
-- Protocol amendments applied to participants (`protocol.applied`, wardcrf/workflow/amendments.py;
-- issue 17): a participant stays on the version they were enrolled under until one of these
-- moves them to a newer loaded version. One row per event; the latest (in log order) is the
-- participant's version. A projection: `db rebuild` replays it from the log.
CREATE TABLE protocol_applications (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    from_version TEXT NOT NULL,
    to_version TEXT NOT NULL,
    reason TEXT NOT NULL,
    applied_by TEXT,
    applied_at TEXT NOT NULL
);
CREATE INDEX protocol_applications_participant ON protocol_applications (participant);

-- migration: 0541-administration-kits
-- The kit each format-2 administration record names (issue 17; wardcrf/kits.py): "kit already used" on a
-- format-2 site is one indexed lookup, not a pass over the records, and each record is read under the
-- version it was captured under (its administration forms and their `kit` field), so a kit given under an
-- older version whose form a newer one renamed is still found. One row per administration record (kit_id
-- NULL when it names none: not given); corrections of the kit update it. A projection: `db rebuild`
-- replays it from the log; a site upgraded through this migration is filled from its records
-- (`kits.fill`, run by `Site.unlock_key`).
CREATE TABLE administration_kits (
    event_id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    form TEXT NOT NULL,
    field TEXT NOT NULL,
    kit_id TEXT
);
CREATE INDEX administration_kits_kit ON administration_kits (kit_id) WHERE kit_id IS NOT NULL;

-- migration: 0550-coldchain-products
-- Each lot belongs to a product of the protocol (`coldchain.lot` record's `product_code`, issue 17);
-- NULL for a lot recorded before products were told apart: it has the protocol's first product.
-- An excursion judged against one product's range (its storage differs from the unit's) names it;
-- NULL: judged against the unit's own range. Projections: `db rebuild` replays them from the log.
ALTER TABLE cc_lots ADD COLUMN product_code TEXT;
ALTER TABLE cc_excursions ADD COLUMN product TEXT;

-- migration: 0560-coldchain-preparations
-- A kit prepared at the pharmacy (`coldchain.preparation` record, issue 17: a product's preparation step
-- declared `at = "pharmacy"`): when, by whom, the steps, the declared fields' values and the prepared
-- product's use-by (its end + the shortest `within`; NULL when the protocol states none). The bedside
-- administration's custody gate requires it. A projection: `db rebuild` replays it from the log.
CREATE TABLE cc_preparations (
    event_id TEXT PRIMARY KEY,
    kit_id TEXT NOT NULL,
    product TEXT NOT NULL,
    steps TEXT NOT NULL,
    start_t INTEGER NOT NULL,
    end_t INTEGER NOT NULL,
    use_by_t INTEGER,
    by_user TEXT,
    field_values TEXT NOT NULL
);
CREATE INDEX cc_preparations_kit ON cc_preparations (kit_id);

-- migration: 0570-ward-queue-visits
-- The ward queue counts the visit forms a participant owes like any other due work (issue 17;
-- wardcrf/workflow/wardqueue.py): `visit_due` is the moment (UTC) from which the earliest visit form the
-- participant owes is due — a calendar visit's window opening (the local midnight of its first day), or
-- the start of an administration whose visit still owes a form; `visit_until` the earliest end of such a
-- window (the queue's order); both NULL when no visit owes anything. A derived index like the rest of the
-- row: `db rebuild` re-derives it, and a site upgraded through this migration re-derives its rows when it
-- is opened (`projections.rederive_after`).
ALTER TABLE ward_queue ADD COLUMN visit_due TEXT;
ALTER TABLE ward_queue ADD COLUMN visit_until TEXT;
CREATE INDEX ward_queue_visits ON ward_queue (visit_due) WHERE visit_due IS NOT NULL;

-- migration: 0580-ward-queue-version-not-loaded
-- No table changes: a site upgraded through this migration re-derives its ward queue when it is opened
-- (`projections.rederive_after`, registered by wardcrf/workflow/wardqueue.py). Before it, a participant on
-- a protocol version this laptop has not loaded (issue 17: moved there by an amendment applied on another
-- laptop) had a row computed under the ACTIVE version — a dose "due", vitals owed — which stayed until
-- their next record, a protocol load or `db rebuild`; re-derived, the row places nothing due for them, as
-- the ward list and `today` say. sync/hub_pg.sql has no counterpart: there is no column to add, and a
-- PostgreSQL hub applies its migrations when it is made (`hub init --database`), never when it opens, so a
-- migration there would re-derive nothing; a hub database made before this change keeps such a row until
-- that participant's next record arrives (its `db rebuild` is refused, docs/hub-postgres.md).

-- migration: 0590-coldchain-excursions-source
-- A cold-chain reading's or a receipt's excursions are found by the record that raised them: each manual
-- reading and each receipt (and each correction of one) first deletes the excursions its record raised before
-- (`DELETE FROM cc_excursions WHERE source_event = ?`, wardcrf/coldchain/projections.py), which without
-- this index read every excursion of the site, once per reading: a cost that grew with the site's
-- history, in every `db rebuild` and hub import. A projection's index: nothing to fill.
CREATE INDEX cc_excursions_source ON cc_excursions (source_event);
