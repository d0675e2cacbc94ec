-- More of the projection for reporting tools: checkouts and their lines, coupons, groups.

-- Every checkout a terminal made, as the hub took it (refunds are not projected yet).
CREATE TABLE transactions (
    tx_id           text PRIMARY KEY,
    terminal_id     text    NOT NULL,
    member_id       text    NOT NULL,
    card            text    NOT NULL,
    at              bigint  NOT NULL,
    day             integer NOT NULL,
    subtotal        bigint  NOT NULL,
    total           bigint  NOT NULL,
    points_earned   bigint  NOT NULL,
    points_redeemed bigint  NOT NULL,
    hub_seq         bigint  NOT NULL
);
CREATE INDEX transactions_member ON transactions (member_id, at);
CREATE INDEX transactions_day ON transactions (day);

CREATE TABLE lines (
    tx_id      text    NOT NULL REFERENCES transactions (tx_id) DEFERRABLE INITIALLY DEFERRED,
    n          integer NOT NULL,
    sku        text    NOT NULL,
    category   text    NOT NULL,
    qty        bigint  NOT NULL,
    unit_price bigint  NOT NULL,
    net        bigint  NOT NULL,
    PRIMARY KEY (tx_id, n)
);

CREATE TABLE coupons (
    code        text PRIMARY KEY,
    type_id     text    NOT NULL,
    member_id   text    NOT NULL,
    issued      integer NOT NULL,
    valid_until integer NOT NULL,
    used_by     text,
    issued_by   text    NOT NULL
);
CREATE INDEX coupons_member ON coupons (member_id);

CREATE TABLE groups (
    group_id    text PRIMARY KEY,
    deal        text    NOT NULL,
    sku         text    NOT NULL,
    group_price bigint  NOT NULL,
    size        integer NOT NULL,
    joined      integer NOT NULL,
    opened_at   bigint  NOT NULL,
    expires_at  bigint  NOT NULL,
    formed_at   bigint
);
