#!/usr/bin/env python3
"""Writes recfusion's demo data to examples/data/: users, items and events drawn from hidden
user tastes, so personalised recommendations can beat popularity. Deterministic (seed 7):
running it again writes the same bytes. Parquet copies are made by examples/make_parquet.sql."""
import csv
import os
import random

SEED = 7
N_USERS, N_ITEMS, N_EVENTS = 300, 120, 12000
CATEGORIES = ["books", "music", "films", "games", "garden", "kitchen"]
ADJECTIVES = ["classic", "modern", "compact", "deluxe", "handmade", "vintage", "bright", "quiet"]
NOUNS = {
    "books": "novel", "music": "album", "films": "film", "games": "board game",
    "garden": "planter", "kitchen": "knife set",
}
CITIES = ["Lisbon", "Oslo", "Lyon", "Tartu", "Porto", "Graz"]
OCCUPATIONS = ["engineer", "teacher", "student", "artist", "nurse", "retired"]
EVENT_TYPES = [("view", 0.55), ("click", 0.25), ("add_to_cart", 0.1), ("purchase", 0.05), ("rating", 0.05)]

def main():
    rng = random.Random(SEED)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    os.makedirs(out, exist_ok=True)
    items = []
    for item_id in range(1, N_ITEMS + 1):
        category = CATEGORIES[(item_id - 1) % len(CATEGORIES)]
        adjective = rng.choice(ADJECTIVES)
        title = f"{adjective.title()} {NOUNS[category].title()} {item_id}"
        description = f"A {adjective} {NOUNS[category]} for people who love {category}."
        price = round(rng.uniform(5, 120), 2)
        items.append((item_id, category, title, description, price))
    users, tastes = [], {}
    for user_id in range(1, N_USERS + 1):
        favourite = rng.sample(CATEGORIES, 2)
        tastes[user_id] = favourite
        users.append((user_id, rng.randint(18, 75), rng.choice(["F", "M"]), rng.choice(CITIES), rng.choice(OCCUPATIONS)))
    by_category = {c: [i for i in items if i[1] == c] for c in CATEGORIES}
    popularity = [1.0 / (rank + 1) ** 0.6 for rank in range(N_ITEMS)]
    events = []
    ts = 1_767_225_600  # 2026-01-01 00:00:00 UTC
    for event_id in range(1, N_EVENTS + 1):
        user_id = rng.randint(1, N_USERS)
        if rng.random() < 0.8:
            item = rng.choice(by_category[rng.choice(tastes[user_id])])
        else:
            item = rng.choices(items, weights=popularity)[0]
        event_type = rng.choices([e for e, _ in EVENT_TYPES], weights=[w for _, w in EVENT_TYPES])[0]
        rating = rng.randint(3, 5) if item[1] in tastes[user_id] else rng.randint(1, 3)
        ts += rng.randint(1, 600)
        events.append((event_id, user_id, item[0], event_type, rating if event_type == "rating" else "", ts))
    # A few exact duplicates, as real logs have, for the quickstart to remove.
    events += [events[i] for i in range(0, N_EVENTS, 997)]
    write(out, "users.csv", ["user_id", "age", "gender", "city", "occupation"], users)
    write(out, "items.csv", ["item_id", "category", "title", "description", "price"], items)
    write(out, "events.csv", ["event_id", "user_id", "item_id", "event_type", "rating", "ts"], events)

def write(folder, name, header, rows):
    with open(os.path.join(folder, name), "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

if __name__ == "__main__":
    main()
