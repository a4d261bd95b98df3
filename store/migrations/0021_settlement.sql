-- Issue 23: settlement. Conekta's own record of the money (transactions, transfers, balance
-- snapshots) as `settle pull` fetched it, the merchant's bank statements as imported, and the
-- postings `settle match` derives from them (domain/settlement.py).

-- Settlement postings name no order or charge where they have none (a transfer, a bank line, a
-- rounding adjustment): the columns allow NULL from now on; every posting before keeps its own.
ALTER TABLE ledger_transactions
    ALTER COLUMN order_id DROP NOT NULL,
    ALTER COLUMN charge_id DROP NOT NULL;
-- `statement`: a bank line of an imported statement (`bank import`) moved the money.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_provenance_check,
    ADD CONSTRAINT ledger_transactions_provenance_check
        CHECK (provenance IN ('signed', 'api', 'statement') OR provenance LIKE 'attested:%');

-- Conekta's transactions (GET /transactions), raw as last fetched, with when each was first seen.
-- The columns are read from the raw record once (Conekta's status moves on: pending, available,
-- paid_out), so the queries need not parse JSON.
CREATE TABLE conekta_transactions (
    id             text NOT NULL,
    livemode       boolean NOT NULL,
    type           text NOT NULL,
    status         text NOT NULL,
    amount         bigint NOT NULL,          -- cents, signed as the money moves
    fee            bigint NOT NULL,          -- commission plus IVA
    net            bigint NOT NULL,          -- amount - fee
    charge_id      text,
    currency       text NOT NULL,
    created_at     timestamptz NOT NULL,     -- Conekta's
    raw            jsonb NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, livemode)
);
CREATE INDEX conekta_transactions_charge_idx ON conekta_transactions (charge_id, livemode);
CREATE INDEX conekta_transactions_created_idx ON conekta_transactions (created_at);

-- Conekta's transfers to the merchant's bank (GET /transfers), raw as last fetched.
CREATE TABLE conekta_transfers (
    id                   text NOT NULL,
    livemode             boolean NOT NULL,
    amount               bigint NOT NULL CHECK (amount >= 0),
    currency             text NOT NULL,
    status               text NOT NULL,
    statement_reference  text,
    created_at           timestamptz NOT NULL,
    raw                  jsonb NOT NULL,
    first_seen_at        timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, livemode)
);
CREATE INDEX conekta_transfers_created_idx ON conekta_transfers (created_at);

-- Snapshots of GET /balance (no mode in the response: the API key's, CONEKTA_API_MODE).
CREATE TABLE conekta_balances (
    id        bigserial PRIMARY KEY,
    livemode  boolean NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now(),
    raw       jsonb NOT NULL
);
CREATE INDEX conekta_balances_taken_idx ON conekta_balances (livemode, taken_at);

-- How far back `settle pull` has read: the newest created_at seen per kind and mode (the next
-- pull pages down to it minus a lookback).
CREATE TABLE settle_watermarks (
    kind      text NOT NULL CHECK (kind IN ('transactions', 'transfers')),
    livemode  boolean NOT NULL,
    seen_to   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, livemode)
);

-- Bank statements (`bank import FILE --account NAME`): one file once, by its hash; its lines
-- are inserted with it in one transaction (nothing half-imported).
CREATE TABLE bank_statements (
    id           bigserial PRIMARY KEY,
    account      text NOT NULL,              -- the ledger's bank:<account>
    file_sha256  text NOT NULL UNIQUE,
    file_name    text NOT NULL,
    first_date   date NOT NULL,              -- the dates its lines cover
    last_date    date NOT NULL,
    lines        integer NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    imported_by  text NOT NULL
);

CREATE TABLE bank_lines (
    id            bigserial PRIMARY KEY,
    statement_id  bigint NOT NULL REFERENCES bank_statements (id),
    line_number   integer NOT NULL,          -- in the file (the header is line 1)
    date          date NOT NULL,
    amount        bigint NOT NULL,           -- cents, positive = money in
    currency      text NOT NULL,
    reference     text NOT NULL,
    description   text NOT NULL,
    UNIQUE (statement_id, line_number)
);
CREATE INDEX bank_lines_date_idx ON bank_lines (date);
