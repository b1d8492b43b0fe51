"""Chinese word segmentation: jieba over a reduced dictionary, built once and kept on disk.

jieba's own dictionary has 349,046 words; loaded, it is a dict of half a million words and
prefixes, about 62 MB in every process that segments. Most of those words are rare: half of
them occurred fewer than four times in the corpus jieba counted. Residents write everyday
Chinese, so the dictionary kept here is

- every word jieba counted at least MIN_FREQ times (52,178 words),
- every single character (they decide how text between known words is cut), and
- every dictionary word inside the product's own vocabulary: the categories, keywords and
  subjects of triage.yaml, its stopwords, the keywords of menus.yaml and the names in
  org.example.yaml (estates, communities, property companies),

about 10 MB loaded. Words keep jieba's frequencies and the total stays the full dictionary's,
so a kept word weighs what it weighed; text jieba does not know is still cut by its HMM.

The reduced dictionary and jieba's prefix cache of it are written once into a cache folder
(the app's instance folder), named by a digest of what they were built from.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

MIN_FREQ = 50
ROOT = Path(__file__).resolve().parent.parent

_tokenizer = None
_lock = threading.Lock()
_cache_dir: Path | None = None


def configure(cache_dir: str | os.PathLike | None) -> None:
    """Sets where the reduced dictionary is kept (default: a folder under the system's temp dir)."""
    global _cache_dir
    _cache_dir = Path(cache_dir) if cache_dir else None


def tokenizer():
    """The jieba tokenizer over the reduced dictionary, loaded once per process."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                _tokenizer = _load()
    return _tokenizer


def vocabulary(root: Path = ROOT) -> set[str]:
    """The product's own terms: triage categories, keywords, subjects and stopwords, menu keywords,
    organisation names."""
    terms: set[str] = set()
    triage = _read_yaml(root / "triage.yaml")
    terms.update(triage.get("stopwords") or ())
    for category in triage.get("categories") or ():
        terms.add(category.get("name") or "")
        terms.update(category.get("keywords") or ())
        terms.update(category.get("subjects") or ())
    terms.update((_read_yaml(root / "menus.yaml").get("keywords") or {}).keys())
    terms.update(_names(_read_yaml(root / "org.example.yaml")))
    return {str(t).strip() for t in terms if t and str(t).strip()}


def _names(node) -> list[str]:
    """Every `name` in a nested YAML document."""
    if isinstance(node, dict):
        found = [node["name"]] if isinstance(node.get("name"), str) else []
        return found + [n for value in node.values() for n in _names(value)]
    if isinstance(node, list):
        return [n for item in node for n in _names(item)]
    return []


def _read_yaml(path: Path) -> dict:
    """A YAML file of the product, or {} when a deployment left it out."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}


def _substrings(terms: set[str], longest: int = 8) -> set[str]:
    """Every substring of two or more characters of the terms (dictionary words are short)."""
    out = set()
    for term in terms:
        for start in range(len(term)):
            for end in range(start + 2, min(len(term), start + longest) + 1):
                out.add(term[start:end])
    return out


def build(full_dictionary: Path, out: Path, terms: set[str], min_freq: int = MIN_FREQ) -> int:
    """Writes the reduced dictionary (first line: the full dictionary's total); returns its size."""
    inside = _substrings(terms)
    total = kept = 0
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with open(full_dictionary, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        lines = []
        for line in src:
            word, freq = line.split(" ")[:2]
            freq = int(freq)
            total += freq
            if freq >= min_freq or len(word) == 1 or word in inside:
                lines.append(f"{word} {freq}\n")
        dst.write(f"# total {total}\n")
        dst.writelines(lines)
        kept = len(lines)
    os.replace(tmp, out)  # another process building the same file meanwhile writes the same bytes
    return kept


def _import_jieba():
    """jieba, without letting it import pkg_resources (10 MB) that only its default dictionary needs."""
    if "jieba" in sys.modules or "pkg_resources" in sys.modules:
        import jieba
        return jieba
    sys.modules["pkg_resources"] = None  # jieba's _compat falls back to opening its files directly
    try:
        import jieba
    finally:
        if sys.modules.get("pkg_resources", 0) is None:
            del sys.modules["pkg_resources"]
    return jieba


def _load():
    """Builds (once per cache folder) and loads the reduced dictionary."""
    started = time.perf_counter()
    jieba = _import_jieba()
    jieba.setLogLevel(logging.WARNING)
    full = Path(jieba.__file__).parent / "dict.txt"
    terms = vocabulary()
    digest = hashlib.sha256("\n".join([jieba.__version__, str(MIN_FREQ), *sorted(terms)]).encode()).hexdigest()
    folder = (_cache_dir or Path(tempfile.gettempdir()) / "redsteward-segmenter").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"jieba-{digest[:16]}.dict"
    if not path.exists():
        kept = build(full, path, terms, MIN_FREQ)
        logger.info("segmenter: reduced dictionary of %d words written to %s", kept, path)

    class Tokenizer(jieba.Tokenizer):
        """jieba's tokenizer, reading the full dictionary's total from the reduced one's first line."""

        def gen_pfdict(self, f):
            """Word frequencies with every prefix of a word (frequency 0), and the total."""
            with f:
                lines = f.read().decode("utf-8").splitlines()
            total = int(lines[0].split()[-1])
            freq: dict[str, int] = {}
            for line in lines[1:]:
                word, count = line.split(" ")[:2]
                freq[word] = int(count)
                for end in range(1, len(word)):
                    freq.setdefault(word[:end], 0)
            return freq, total

    tok = Tokenizer(str(path))
    tok.cache_file = str(path.with_suffix(".cache"))
    tok.initialize()
    logger.debug("segmenter: %d entries loaded in %.2f s", len(tok.FREQ), time.perf_counter() - started)
    return tok
