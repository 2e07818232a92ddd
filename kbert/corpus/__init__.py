"""Pre-training text from what corpora are published as: MediaWiki XML dumps, JSON lines,
plain text (compressed or not) → google-research/bert text shards + manifest.json.

One module per job: `sniff` (what a file is, by content), `mediawiki` (streamed dump
pages), `wikitext` (markup → paragraphs), `jsonl` / `plaintext` (documents of those
files), `sentences` (splitting in every script), `shards` (the writer), `prepare` (the
pipeline `trainers.prepare_corpus` runs), `documents` (the same documents streamed, for
`trainers.pretrain --raw_text` and `trainers.learn_vocab`).

Example:
    >>> from kbert import corpus
    >>> corpus.prepare_corpus("dumps/*.bz2", "/tmp/wiki", num_workers=2)  # doctest: +SKIP
"""

from kbert.corpus.documents import CorpusDocuments, as_text_files, is_plain_text
from kbert.corpus.errors import CorpusError
from kbert.corpus.prepare import expand_inputs, prepare_corpus, to_sentences
from kbert.corpus.sentences import split_sentences
from kbert.corpus.sniff import sniff
from kbert.corpus.wikitext import clean_wikitext

__all__ = ["CorpusDocuments", "CorpusError", "as_text_files", "clean_wikitext", "expand_inputs", "is_plain_text",
           "prepare_corpus", "sniff", "split_sentences", "to_sentences"]
