-- Keeping stored profiles current as events arrive, without recomputing every user.
--
--   recfusion -f examples/update_profiles.sql --define since=0            (first run: everyone)
--   recfusion -f examples/update_profiles.sql --define since=1770821979   (later: changed users)
--
-- Each run re-encodes only the users with events after ${since} — a time-decayed mean of the
-- category vectors of everything they did, recent events weighing more — and upserts them into
-- a SQLite table that BI tools read; other users' rows stay as they were.

ATTACH '/tmp/recfusion-profiles.sqlite' AS out;
CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'examples/data/events.parquet';
CREATE EXTERNAL TABLE items STORED AS PARQUET LOCATION 'examples/data/items.parquet';

CREATE TABLE item_vectors AS
SELECT item_id,
       vector([CASE WHEN category = 'books'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'music'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'films'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'games'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'garden'  THEN 1 ELSE 0 END,
               CASE WHEN category = 'kitchen' THEN 1 ELSE 0 END], 6) AS vector
FROM items;

CREATE TABLE IF NOT EXISTS out.profiles (
  user_id BIGINT PRIMARY KEY, profile FLOAT[], events BIGINT, last_event BIGINT, updated_at TIMESTAMP);

-- The users to re-encode, and the time their profiles are computed at.
CREATE TABLE changed AS SELECT DISTINCT user_id FROM events WHERE ts > ${since};
CREATE TABLE clock AS SELECT max(ts) AS now_ts FROM events;

INSERT INTO out.profiles
SELECT e.user_id,
       decayed_mean(v.vector, c.now_ts - e.ts, 14 * 86400) AS profile,
       count(*) AS events, max(e.ts) AS last_event, now() AS updated_at
FROM events e JOIN changed USING (user_id) JOIN item_vectors v USING (item_id) CROSS JOIN clock c
GROUP BY e.user_id
ON CONFLICT (user_id) DO UPDATE SET profile = excluded.profile, events = excluded.events,
  last_event = excluded.last_event, updated_at = excluded.updated_at;

SELECT (SELECT count(*) FROM changed) AS users_re_encoded,
       (SELECT count(*) FROM out.profiles) AS profiles_stored;
