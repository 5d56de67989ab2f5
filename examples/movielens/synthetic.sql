-- A MovieLens-shaped data set of any size, in MovieLens 100K's file layout (u.data, u.item,
-- u.user), generated with recfusion itself, so the benchmark can be measured on more data than
-- ships with the project:
--
--   recfusion -f examples/movielens/synthetic.sql --define out=DIR \
--             --define users=3000 --define items=3700 --define mean_history=180
--   recfusion -f examples/movielens/evaluate.sql --define data=DIR
--
-- History lengths are skewed: 20 + an exponential draw of mean `mean_history − 20`, at most
-- half the catalogue, before a user's repeated items are dropped. Items are drawn with skewed
-- popularity (low ids popular); timestamps follow each user's order; genres, ages, genders and
-- occupations are arbitrary. The same definitions give the same files. The data is not meant
-- to be realistic (each user's items follow a fixed hash, which sequence models pick up): use
-- it to measure time and memory, not quality. The last statement prints what was made (3,000
-- users, 3,700 items and 495,261 ratings with the definitions above). The item hash is
-- multiplied out in 38-digit decimals: in 64-bit integers it overflowed past about 3,400 users.

CREATE TABLE synthetic_users AS
SELECT value AS user_id,
       CAST(least(${items} / 2, 20 + floor((${mean_history} - 20) * -ln(((value * 2654435761) % 1000003 + 1) / 1000004.0))) AS BIGINT) AS length
FROM generate_series(1, ${users});

CREATE TABLE synthetic_ratings AS
SELECT user_id, item_id, min(step) AS step FROM (
  SELECT user_id, step,
         1 + CAST(floor(${items} * power(CAST((CAST(user_id * 1000003 + step AS DECIMAL(38, 0)) * 2654435761) % 1000000007 AS BIGINT) / 1000000007.0, 2.5)) AS BIGINT) AS item_id
  FROM (SELECT user_id, unnest(range(1, length + 1)) AS step FROM synthetic_users))
GROUP BY user_id, item_id;

COPY (SELECT user_id, item_id, 1 + (user_id * 31 + item_id * 17) % 5 AS rating, 880000000 + step * 600 + user_id % 600 AS ts
      FROM synthetic_ratings ORDER BY user_id, step)
TO '${out}/u.data' STORED AS CSV OPTIONS ('format.delimiter' E'\t', 'format.has_header' 'false');

COPY (SELECT value AS item_id, concat('Movie ', value, ' (1995)') AS title, '01-Jan-1995' AS released, 'unknown' AS video,
             concat('http://example.com/', value) AS url,
             CASE WHEN (value * 7 + 0) % 11 = 0 THEN 1 ELSE 0 END AS g1, CASE WHEN (value * 7 + 1) % 11 = 0 THEN 1 ELSE 0 END AS g2,
             CASE WHEN (value * 7 + 2) % 11 = 0 THEN 1 ELSE 0 END AS g3, CASE WHEN (value * 7 + 3) % 11 = 0 THEN 1 ELSE 0 END AS g4,
             CASE WHEN (value * 7 + 4) % 11 = 0 THEN 1 ELSE 0 END AS g5, CASE WHEN (value * 7 + 5) % 11 = 0 THEN 1 ELSE 0 END AS g6,
             CASE WHEN (value * 7 + 6) % 11 = 0 THEN 1 ELSE 0 END AS g7, CASE WHEN (value * 7 + 7) % 11 = 0 THEN 1 ELSE 0 END AS g8,
             CASE WHEN (value * 7 + 8) % 11 = 0 THEN 1 ELSE 0 END AS g9, CASE WHEN (value * 7 + 9) % 11 = 0 THEN 1 ELSE 0 END AS g10,
             CASE WHEN (value * 7 + 10) % 11 = 0 THEN 1 ELSE 0 END AS g11, CASE WHEN (value * 3 + 0) % 13 = 0 THEN 1 ELSE 0 END AS g12,
             CASE WHEN (value * 3 + 1) % 13 = 0 THEN 1 ELSE 0 END AS g13, CASE WHEN (value * 3 + 2) % 13 = 0 THEN 1 ELSE 0 END AS g14,
             CASE WHEN (value * 3 + 3) % 13 = 0 THEN 1 ELSE 0 END AS g15, CASE WHEN (value * 3 + 4) % 13 = 0 THEN 1 ELSE 0 END AS g16,
             CASE WHEN (value * 3 + 5) % 13 = 0 THEN 1 ELSE 0 END AS g17, CASE WHEN (value * 3 + 6) % 13 = 0 THEN 1 ELSE 0 END AS g18,
             CASE WHEN (value * 3 + 7) % 13 = 0 THEN 1 ELSE 0 END AS g19
      FROM generate_series(1, ${items}))
TO '${out}/u.item' STORED AS CSV OPTIONS ('format.delimiter' '|', 'format.has_header' 'false');

COPY (SELECT value AS user_id, 18 + (value * 7) % 50 AS age, CASE value % 2 WHEN 0 THEN 'F' ELSE 'M' END AS gender,
             CASE value % 5 WHEN 0 THEN 'student' WHEN 1 THEN 'engineer' WHEN 2 THEN 'artist' WHEN 3 THEN 'writer' ELSE 'other' END AS occupation,
             10000 + (value * 7919) % 89999 AS zip
      FROM generate_series(1, ${users}))
TO '${out}/u.user' STORED AS CSV OPTIONS ('format.delimiter' '|', 'format.has_header' 'false');

SELECT count(*) AS users, (SELECT count(DISTINCT item_id) FROM synthetic_ratings) AS items, sum(n) AS ratings,
       min(n) AS shortest_history, approx_median(n) AS median_history, max(n) AS longest_history
FROM (SELECT user_id, count(*) AS n FROM synthetic_ratings GROUP BY user_id);
