"""Tokenisers shared by BLEU, CIDEr-D and METEOR.

Captioning papers score text after the coco-caption pipeline: Stanford PTB
tokenisation, lower case, punctuation tokens dropped.  ``coco`` reproduces that
in pure Python (no Java needed); ``13a`` is sacrebleu's default for MT-style
BLEU; ``char`` splits CJK text into characters (Chinese/Japanese have no
spaces); ``whitespace`` trusts text that is already tokenised.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List

# The punctuation tokens coco-caption's PTBTokenizer removes after tokenising.  Its list names
# brackets as "-LRB-" etc. but the tokens are lower-cased first, so brackets survive as "-lrb-":
# we keep that quirk, since the published numbers include it.
COCO_PUNCTUATION = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"'])
PTB_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}

# PTB splits these clitics off the word before them ("don't" -> "do n't", "cat's" -> "cat 's").
_CLITIC = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
# A token: a number with inner dots/commas, a word with inner hyphens/apostrophes, a clitic, or one symbol.
_TOKEN = re.compile(
    r"\d+(?:[.,]\d+)+"           # 3.5  1,000
    r"|(?:[a-z]\.){2,}"           # u.s.  e.g.
    r"|(?:mr|mrs|ms|dr|st|jr|sr|prof|vs|etc|inc|ltd|corp|mt)\.(?=\s+\S)"  # titles before more text
    r"|n't|'(?:s|re|ve|ll|d|m)\b"  # clitics split off above
    r"|\w+(?:[-'&]\w+)*"          # left-to-right, o'clock, at&t
    r"|\.\.\.|--|``|''"          # multi-character punctuation
    r"|\S"                         # any other single symbol
)
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\uac00-\ud7af])")


def coco_tokenize(text: str) -> List[str]:
    """PTB-style tokens, lower-cased, with coco-caption's punctuation removed."""
    text = text.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = _CLITIC.sub(r"\1 \2", text)
    tokens = (PTB_BRACKETS.get(t, t) for t in _TOKEN.findall(text))
    return [t for t in tokens if t not in COCO_PUNCTUATION]


def sacrebleu_13a_tokenize(text: str) -> List[str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(text).split()


def char_tokenize(text: str) -> List[str]:
    """CJK characters one by one; runs of other letters stay words; punctuation dropped."""
    spaced = _CJK.sub(r" \1 ", text.lower())
    return [t for t in re.findall(r"\w+|[^\w\s]", spaced) if re.match(r"\w", t)]


def whitespace_tokenize(text: str) -> List[str]:
    return text.split()


TOKENIZERS: Dict[str, Callable[[str], List[str]]] = {
    "coco": coco_tokenize,
    "13a": sacrebleu_13a_tokenize,
    "char": char_tokenize,
    "whitespace": whitespace_tokenize,
}


def get_tokenizer(name: str) -> Callable[[str], List[str]]:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown tokenize={name!r}; choose one of {', '.join(TOKENIZERS)}") from None


class RougeTokenizerAdapter:
    """Lets rouge-score use one of our tokenisers (its own drops every non-ASCII letter)."""

    def __init__(self, name: str):
        self.name = name
        self._fn = get_tokenizer(name)

    def tokenize(self, text: str) -> List[str]:
        return self._fn(text)
