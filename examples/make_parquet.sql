-- Writes Parquet copies of the demo CSVs: recfusion -f examples/make_parquet.sql
COPY (SELECT * FROM 'examples/data/users.csv') TO 'examples/data/users.parquet';
COPY (SELECT * FROM 'examples/data/items.csv') TO 'examples/data/items.parquet';
COPY (SELECT * FROM 'examples/data/events.csv') TO 'examples/data/events.parquet';
