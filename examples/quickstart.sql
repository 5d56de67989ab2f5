-- recfusion quickstart on the bundled demo data:
--   cargo run -- -f examples/quickstart.sql
-- Loads behaviour logs, cleans them, builds user profile vectors and scores items, then trains
-- a model, pools attention profiles, recommends with the top-k operator and writes SQLite.

-- 1. Load: Parquet for events and items, CSV for users.
CREATE EXTERNAL TABLE raw_events STORED AS PARQUET LOCATION 'examples/data/events.parquet';
CREATE EXTERNAL TABLE items STORED AS PARQUET LOCATION 'examples/data/items.parquet';
CREATE EXTERNAL TABLE users STORED AS CSV LOCATION 'examples/data/users.csv' OPTIONS ('format.has_header' 'true');

-- 2. Clean: drop exact duplicate events, and weight each event by how strong a signal it is.
CREATE TABLE events AS
SELECT DISTINCT event_id, user_id, item_id, event_type, rating, ts,
       CASE event_type WHEN 'purchase' THEN 4.0 WHEN 'add_to_cart' THEN 3.0
                       WHEN 'rating' THEN rating / 2.0 WHEN 'click' THEN 1.5 ELSE 1.0 END AS weight
FROM raw_events;

SELECT (SELECT count(*) FROM raw_events) AS raw_events,
       (SELECT count(*) FROM events) AS clean_events,
       (SELECT count(DISTINCT user_id) FROM events) AS users,
       (SELECT count(DISTINCT item_id) FROM events) AS items;

-- 3. Normalise: z-score of the item price.
CREATE TABLE item_features AS
SELECT item_id, category, title, price,
       (price - avg(price) OVER ()) / stddev(price) OVER () AS price_z,
       vector([CASE WHEN category = 'books'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'music'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'films'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'games'   THEN 1 ELSE 0 END,
               CASE WHEN category = 'garden'  THEN 1 ELSE 0 END,
               CASE WHEN category = 'kitchen' THEN 1 ELSE 0 END], 6) AS category_vector
FROM items;

SELECT item_id, category, price, round(price_z, 3) AS price_z, vector_to_text(category_vector) AS category_vector
FROM item_features ORDER BY item_id LIMIT 3;

-- 4. Profile: each user's vector is the mean of the category vectors of what they
--    interacted with (strong signals repeated by weight would refine this further).
CREATE TABLE profiles AS
SELECT e.user_id, vector_normalize(vector_mean(f.category_vector)) AS profile, count(*) AS events
FROM events e JOIN item_features f ON e.item_id = f.item_id
GROUP BY e.user_id;

SELECT user_id, events, vector_to_text(profile, 2) AS profile FROM profiles ORDER BY user_id LIMIT 3;

-- 5. Score: cosine similarity between profile and item vectors, top 3 unseen items per user.
SELECT user_id, rank, item_id, title, round(score, 3) AS score FROM (
  SELECT p.user_id, f.item_id, f.title,
         array_cosine_similarity(p.profile, f.category_vector) AS score,
         ROW_NUMBER() OVER (PARTITION BY p.user_id
                            ORDER BY array_cosine_similarity(p.profile, f.category_vector) DESC, f.price_z ASC, f.item_id) AS rank
  FROM profiles p CROSS JOIN item_features f
  WHERE p.user_id <= 3
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = p.user_id AND e.item_id = f.item_id)
) WHERE rank <= 3
ORDER BY user_id, rank;

-- 6. Model: item and user vectors learned from the weighted interactions (iALS), kept under a
--    name in the models directory, where a later session finds it (SELECT * FROM models()).
SELECT users, items, factors, iterations, round(loss, 4) AS loss
FROM train_als('events', model => 'quickstart_als', factors => 16, iterations => 15,
               regularization => 0.1, alpha => 1.0, seed => 7,
               user => 'user_id', item => 'item_id', weight => 'weight');
CREATE TABLE item_vectors AS SELECT * FROM model_vectors('quickstart_als', 'items');

-- 7. Attention profile: pool the vectors of each user's items, recent events weighing more.
CREATE TABLE recent AS
SELECT user_id, item_id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts DESC, event_id) AS age FROM events;
CREATE TABLE model_profiles AS
SELECT r.user_id, attention_pool(v.vector, NULL, -0.05 * r.age) AS profile
FROM recent r JOIN item_vectors v USING (item_id) GROUP BY r.user_id;

-- 8. Recommend with the top-k operator: the 3 best unseen items per user.
SELECT r.user_id, r.rank, r.item_id, i.title, round(r.score, 3) AS score
FROM recommend('model_profiles', 'item_vectors', 3, metric => 'cosine', exclude => 'events',
               exclude_user => 'user_id', exclude_item => 'item_id') r JOIN items i USING (item_id)
WHERE r.user_id <= 3 ORDER BY r.user_id, r.rank;

-- 9. Persist for BI tools: one SQLite table with a row per (user, rank), written atomically.
ATTACH '/tmp/recfusion-quickstart.sqlite' AS out;
CREATE OR REPLACE TABLE out.recommendations (PRIMARY KEY (user_id, rank)) AS
SELECT user_id, rank, item_id, score
FROM recommend('model_profiles', 'item_vectors', 10, metric => 'cosine', exclude => 'events',
               exclude_user => 'user_id', exclude_item => 'item_id');
SELECT table_name, operation, rows_written FROM out.recfusion_tables;
