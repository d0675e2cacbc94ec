-- When each terminal stream last reached the hub (a push or a pull it accepted) and the
-- feed cursor its last pull answered: the terminals view's last_contact and
-- records_behind. Not state (no record says it): one small upsert per push or pull,
-- outside the head lock. Instants are µs since the epoch, UTC.
CREATE TABLE terminal_contact (
    terminal_id text   NOT NULL,
    epoch       bigint NOT NULL,
    pushed_at   bigint,
    pulled_at   bigint,
    pull_cursor bigint,
    PRIMARY KEY (terminal_id, epoch)
);
