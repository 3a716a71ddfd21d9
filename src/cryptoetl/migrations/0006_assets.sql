-- One asset across sources (README "Assets").
--
-- assets          the canonical assets: a stable slug id, a symbol and a name
-- asset_pins      operators' decisions for one (source, coin_id): the shipped overrides file
--                 (origin 'file') and the admin API (origin 'admin', which wins); asset_id
--                 null pins the coin as "no asset"
-- asset_mappings  the decision for every (source, coin_id) ever seen: its asset, or null
--                 (unmapped) with the reason; the name and symbol it was decided on; the
--                 rule, confidence and evidence; who decided (auto, file, admin) and when
--
-- Nothing is added to unified_crypto_data: an asset's observations are read through its
-- mappings with the unique index (source, coin_id, observed_at), and the mapping is kept
-- current at the end of each source run, not per batch (see cryptoetl/assets/sync.py).

CREATE TABLE assets (
    asset_id   text        PRIMARY KEY CHECK (asset_id ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    symbol     text        NOT NULL,
    name       text        NOT NULL,
    -- a wrapped, bridged, pegged or staked token (never merged with what it mirrors)
    derivative boolean     NOT NULL DEFAULT false,
    origin     text        NOT NULL CHECK (origin IN ('auto', 'file', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE assets IS 'Canonical assets: one row per coin, whatever the sources call it.';
CREATE INDEX assets_symbol ON assets (lower(symbol));

CREATE TABLE asset_pins (
    source    text        NOT NULL,
    coin_id   text        NOT NULL,
    origin    text        NOT NULL CHECK (origin IN ('file', 'admin')),
    asset_id  text        REFERENCES assets (asset_id),
    note      text,
    pinned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, coin_id, origin)
);
COMMENT ON TABLE asset_pins IS
    'Operator pins of (source, coin_id) to an asset (or to none); admin pins win over file pins.';

CREATE TABLE asset_mappings (
    source        text        NOT NULL,
    coin_id       text        NOT NULL,
    asset_id      text        REFERENCES assets (asset_id),
    name          text,
    symbol        text,
    rule          text        NOT NULL,
    confidence    float8      NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    method        text        NOT NULL CHECK (method IN ('auto', 'file', 'admin')),
    reason        text        NOT NULL,
    evidence      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, coin_id)
);
COMMENT ON TABLE asset_mappings IS
    'Which asset each (source, coin_id) is, how and when that was decided; null asset = unmapped.';
CREATE INDEX asset_mappings_asset ON asset_mappings (asset_id, source, coin_id)
    WHERE asset_id IS NOT NULL;
CREATE INDEX asset_mappings_unmapped ON asset_mappings (source, coin_id) WHERE asset_id IS NULL;
