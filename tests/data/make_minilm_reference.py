"""Writes tests/data/minilm_reference.json: all-MiniLM-L6-v2's embeddings of ten fixed texts as
sentence-transformers computes them (the reference recfusion's embed_text is tested against).

python make_minilm_reference.py MODEL_DIR OUT.json   (sentence-transformers installed)
"""
import json, sys
from sentence_transformers import SentenceTransformer

long_text = " ".join(["A long synopsis that goes on and on about the film's plot, its cast and its music."] * 40)
TEXTS = [
    "A warm reading lamp for the desk.",
    "Les Misérables (1995)",
    "推荐系统",
    "Toy Story (1995) Animation|Children's|Comedy",
    "Schindler's List (1993) Drama|War",
    "naïve café résumé, déjà vu",
    "GoldenEye (1995) Action|Adventure|Thriller",
    "Ünïcödé and emoji 🎬🍿 at the movies",
    "The quick brown fox jumps over the lazy dog.",
    long_text,
]
model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(TEXTS, batch_size=64, convert_to_numpy=True)
json.dump({
    "model": "all-MiniLM-L6-v2 (sentence-transformers %s)" % __import__("sentence_transformers").__version__,
    "max_seq_length": model.max_seq_length,
    "texts": TEXTS,
    "vectors": [[round(float(x), 7) for x in v] for v in vectors],
}, open(sys.argv[2], "w"), ensure_ascii=False)
print(len(TEXTS), "texts,", vectors.shape[1], "dimensions, max_seq_length", model.max_seq_length)
