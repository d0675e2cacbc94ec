-- The rest of the projection for reporting tools: each member's points ledger, entry for
-- entry, and what was refunded of each checkout.

-- One row per ledger entry; n numbers a member's entries from 0, oldest first (the
-- primary key read backwards is "a member's ledger newest first").
CREATE TABLE ledger (
    member_id     text        NOT NULL REFERENCES members (member_id) DEFERRABLE INITIALLY DEFERRED,
    n             bigint      NOT NULL,
    at            timestamptz NOT NULL,
    kind          text        NOT NULL,
    points        bigint      NOT NULL,
    balance_after bigint      NOT NULL,
    tx_id         text,
    reason        text,
    by            text,
    PRIMARY KEY (member_id, n)
);
CREATE INDEX ledger_tx ON ledger (tx_id) WHERE tx_id IS NOT NULL;

-- A checkout's refunds so far (there may be several, each of some of its lines).
ALTER TABLE transactions
    ADD COLUMN refunds            integer NOT NULL DEFAULT 0,
    ADD COLUMN refunded_amount    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN points_returned    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN points_clawed_back bigint  NOT NULL DEFAULT 0;
