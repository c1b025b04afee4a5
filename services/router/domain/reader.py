"""The second reader: a small learned text model beside the rules, for red risk and category.

The rules read what their word lists foresaw; a report phrased in a way no list foresaw
(让你横着下去, 这辈子就到这了) slips past them. This model reads character n-grams (1–3 of
the normalised text), so it generalises from the labelled reports rather than from a list.
It was trained by scripts/train_reader.py (scikit-learn: TF-IDF and logistic regression)
and is stored as plain arrays (services/router/data/reader.npz: vocabulary, idf, weights,
thresholds), so inference is a few numpy lines and a scikit-learn upgrade cannot break
loading. It never downloads anything; the file ships with the code.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from contracts.enums import Category

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "data" / "reader.npz"
FORMAT = 1
# scikit-learn's "char" analyzer folds runs of whitespace into one space; normalised text
# has none, but a report read by the model alone (the training script) may.
_WHITESPACE = re.compile(r"\s\s+")
# Verdicts remembered per reader (a few hundred bytes each); when full it starts afresh.
VERDICTS_KEPT = 10_000


@dataclass(frozen=True)
class Thresholds:
    red: float           # at or above: the model says red
    red_doubt: float     # from here up to `red`: the model is unsure, a person should look
    red_clear: float     # below this the model disputes a red of the rules
    category: float      # the model's category probability it must reach to disagree
    category_doubt: float  # below this, and the rules found no terms: too unsure to route


@dataclass(frozen=True)
class ReaderVerdict:
    red_probability: float
    category: Category
    category_probability: float
    thresholds: Thresholds

    @property
    def says_red(self) -> bool:
        return self.red_probability >= self.thresholds.red

    @property
    def unsure_of_red(self) -> bool:
        return self.thresholds.red_doubt <= self.red_probability < self.thresholds.red

    @property
    def sure_of_category(self) -> bool:
        return self.category_probability >= self.thresholds.category


class TextReader:
    """Character 1–3-gram TF-IDF (sublinear tf, l2 norm) and one linear layer: red + categories."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, weights: np.ndarray,
                 bias: np.ndarray, categories: list[Category], thresholds: Thresholds,
                 ngram_max: int, version: str,
                 cross_validated: dict[str, Any] | None = None) -> None:
        self.index = {gram: i for i, gram in enumerate(vocabulary)}
        self.idf = idf.astype(np.float64)
        # Column 0 is red-vs-not (a logistic score); columns 1.. are the categories' logits.
        self.weights = weights.astype(np.float64)
        self.bias = bias.astype(np.float64)
        self.categories = categories
        self.thresholds = thresholds
        self.ngram_max = ngram_max
        self.ngrams = range(1, ngram_max + 1)
        self.version = version
        self.cross_validated = cross_validated or {}  # the training's out-of-fold figures
        self._verdicts: dict[str, ReaderVerdict] = {}

    def read(self, text: str) -> ReaderVerdict:
        """`text` as the rules read it (text.normalise): simplified, half-width, no spaces.
        Verdicts are remembered by text, like the rules' readings (reading.READINGS_KEPT):
        reading a text again was a fifth of the router's CPU where texts repeat."""
        verdict = self._verdicts.get(text)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            verdict = self._verdicts[text] = self._read(text)
        return verdict

    def _read(self, text: str) -> ReaderVerdict:
        text = _WHITESPACE.sub(" ", text.lower())
        get = self.index.get
        length = len(text)
        found = [column for column in map(get, [text[i:i + n] for n in self.ngrams
                                                 for i in range(length - n + 1)])
                 if column is not None]
        scores = self.bias
        if found:
            counted = Counter(found)
            columns = np.fromiter(counted.keys(), dtype=np.intp, count=len(counted))
            tf = np.fromiter(counted.values(), dtype=np.float64, count=len(counted))
            values = (1.0 + np.log(tf)) * self.idf[columns]
            values /= math.sqrt(float(values @ values))
            scores = scores + values @ self.weights.take(columns, axis=0)
        # A handful of numbers: plain Python is quicker here than more numpy calls.
        red_score, *logits = scores.tolist()
        red = 1.0 / (1.0 + math.exp(-red_score))
        top = max(logits)
        best = logits.index(top)
        total = sum(math.exp(logit - top) for logit in logits)
        return ReaderVerdict(red, self.categories[best], 1.0 / total, self.thresholds)


def load_reader(path: str | Path = DEFAULT_MODEL) -> TextReader:
    with np.load(Path(path), allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta["format"] != FORMAT:
            raise ValueError(f"{path}: reader format {meta['format']}, expected {FORMAT}")
        return TextReader(
            vocabulary=[str(g) for g in data["vocabulary"]],
            idf=data["idf"], weights=data["weights"], bias=data["bias"],
            categories=[Category(c) for c in meta["categories"]],
            thresholds=Thresholds(**meta["thresholds"]),
            ngram_max=int(meta["ngram_max"]), version=str(meta["version"]),
            cross_validated=meta.get("cross_validated"))


@cache
def default_reader() -> TextReader | None:
    """The shipped model, loaded once (the router loads it at start); None if not shipped."""
    if not DEFAULT_MODEL.exists():
        return None
    return load_reader(DEFAULT_MODEL)
