-- The hub on PostgreSQL (ARCHITECTURE.md, "The hub on PostgreSQL").

-- The state as the hub's apply keeps it: the same keys and encodings as the embedded
-- store (postcard behind a version byte). Written only by the hub, in the transaction
-- of the records it comes from; reporting tools read the projection tables below.
CREATE TABLE hub_kv (
    key   bytea PRIMARY KEY,
    value bytea NOT NULL
);

-- The hub's own journal: every record it applied, by hub seq, as encoded by
-- `Record::encode` (a pushed record inside a `Remote`). Checkouts are read back from it.
CREATE TABLE hub_journal (
    seq    bigint PRIMARY KEY,
    record bytea  NOT NULL
);

-- The last hub seq. Every transaction that writes the state locks this row first:
-- writers queue here, one at a time, and each sees everything committed before it.
CREATE TABLE hub_head (
    id  smallint PRIMARY KEY CHECK (id = 1),
    seq bigint   NOT NULL
);
INSERT INTO hub_head (id, seq) VALUES (1, 0);

-- Every record a terminal pushed, once per identity: a resend is a duplicate, the same
-- identity with other content a conflict. epoch is the stream's u64 epoch as bits.
CREATE TABLE terminal_records (
    terminal_id  text   NOT NULL,
    epoch        bigint NOT NULL,
    seq          bigint NOT NULL,
    content_hash bytea  NOT NULL,
    hub_seq      bigint NOT NULL REFERENCES hub_journal (seq) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (terminal_id, epoch, seq)
);

-- Per terminal stream: the acknowledgement (highest contiguous seq held) and counts.
CREATE TABLE terminals (
    terminal_id     text   NOT NULL,
    epoch           bigint NOT NULL,
    acked_seq       bigint NOT NULL,
    records         bigint NOT NULL,
    duplicates      bigint NOT NULL,
    skipped         bigint NOT NULL,
    untrusted_clock bigint NOT NULL,
    PRIMARY KEY (terminal_id, epoch)
);

-- The relational projection for reporting tools, kept in step in the same transaction.
CREATE TABLE members (
    member_id     text PRIMARY KEY,
    name          text    NOT NULL,
    phone         text    NOT NULL,
    tier          text    NOT NULL,
    balance       bigint  NOT NULL,
    active        boolean NOT NULL,
    merged_into   text,
    enrolled_by   text    NOT NULL,
    visits        bigint  NOT NULL,
    created_at    bigint  NOT NULL,
    last_visit_at bigint,
    hub_seq       bigint  NOT NULL
);
CREATE INDEX members_phone ON members (phone);

CREATE TABLE cards (
    card      text PRIMARY KEY,
    member_id text NOT NULL,
    status    text NOT NULL
);
CREATE INDEX cards_member ON cards (member_id);
