"""Settings of pre-training data creation, validated with errors that name the flag.

The field names are google-research/bert's `create_pretraining_data.py` flag names, so a
message such as "--max_seq_length=4 is too small" points at the flag a user typed.

Example:
    >>> s = PretrainingDataSettings(max_seq_length=128, max_predictions_per_seq=20)
    >>> s.max_num_tokens
    125
    >>> PretrainingDataSettings(max_seq_length=4)
    Traceback (most recent call last):
    ...
    kbert.data.settings.PretrainingDataError: --max_seq_length=4 is too small: [CLS] A [SEP] B [SEP] needs at least 5 positions (3 special tokens and one token each for A and B)
"""

from __future__ import annotations

import dataclasses

from kbert.configs import FAMILIES, SENTENCE_OBJECTIVES

# [CLS] A [SEP] B [SEP]: three special tokens, and A and B need one token each.
NUM_SPECIAL_TOKENS_IN_PAIR = 3
MIN_MAX_SEQ_LENGTH = NUM_SPECIAL_TOKENS_IN_PAIR + 2
SENTENCE_SPLITTING = ("auto", "always", "never")


class PretrainingDataError(ValueError):
    """Bad input for pre-training data: the message names the flag, file or line."""


@dataclasses.dataclass(frozen=True)
class PretrainingDataSettings:
    """Everything that decides the content of the examples (not where or how fast they are
    written). Two runs with equal settings and equal inputs write byte-identical shards.

    Args:
        max_seq_length: tokens per example including [CLS] and two [SEP].
        max_predictions_per_seq: most masked positions per example (P of the records).
        masked_lm_prob: fraction of the non-special tokens chosen for prediction.
        short_seq_prob: probability of a shorter random target length (google's 0.1).
        dupe_factor: passes over the corpus, each with fresh pairs and masks.
        random_seed: the seed every random draw derives from.
        do_lower_case: lower-case and strip accents before WordPiece.
        do_whole_word_mask: choose all pieces of a word together.
        dynamic_masking: write unmasked examples; the input pipeline masks them each epoch.
        documents_per_chunk: the unit of work; NotNext segments are drawn within a chunk.
        num_output_shards: number of TFRecord files.
        sentence_splitting: "auto" splits the line of a one-line document (a corpus of one
            paragraph per line) into sentences with `kbert.text.split_sentences`, and keeps
            google's one-sentence-per-line documents as they are; "always" splits every
            line; "never" takes lines as sentences.
        family: the model family whose tokenizer writes the ids (bert, roberta, albert,
            distilbert; `kbert.tokenizers.families`).
        sentence_objective: "nsp" (google's NotNext pairs), "sop" (ALBERT's sentence-order
            pairs, label 1 = swapped) or "none" (RoBERTa's FULL-SENTENCES: one segment
            packed across documents, label 0).
        max_ngram: ALBERT's n-gram masking: spans of up to this many words, P(n) ∝ 1/n
            (1: off).
    """

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    random_seed: int = 12345
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    dynamic_masking: bool = False
    documents_per_chunk: int = 100
    num_output_shards: int = 1
    sentence_splitting: str = "auto"
    family: str = "bert"
    sentence_objective: str = "nsp"
    max_ngram: int = 1

    def __post_init__(self):
        self.validate()

    @property
    def max_num_tokens(self) -> int:
        """Tokens left for A and B after [CLS], [SEP], [SEP] (for one packed segment after
        `<s>`, `</s>` with objective "none")."""
        if self.sentence_objective == "none":
            return self.max_seq_length - 2
        return self.max_seq_length - NUM_SPECIAL_TOKENS_IN_PAIR

    def validate(self) -> None:
        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PretrainingDataError(f"--{name} must be a positive integer, got {value!r}")

        def is_number(value):
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        for name in ("max_seq_length", "max_predictions_per_seq", "dupe_factor",
                     "documents_per_chunk", "num_output_shards", "max_ngram"):
            positive_int(name)
        if self.max_seq_length < MIN_MAX_SEQ_LENGTH:
            raise PretrainingDataError(
                f"--max_seq_length={self.max_seq_length} is too small: [CLS] A [SEP] B [SEP] "
                f"needs at least {MIN_MAX_SEQ_LENGTH} positions (3 special tokens and one token "
                "each for A and B)")
        if self.max_predictions_per_seq > self.max_seq_length:
            raise PretrainingDataError(
                f"--max_predictions_per_seq={self.max_predictions_per_seq} exceeds "
                f"--max_seq_length={self.max_seq_length}")
        if not is_number(self.masked_lm_prob) or not 0.0 < self.masked_lm_prob <= 1.0:
            raise PretrainingDataError(
                f"--masked_lm_prob must be in (0, 1], got {self.masked_lm_prob!r}")
        if not is_number(self.short_seq_prob) or not 0.0 <= self.short_seq_prob <= 1.0:
            raise PretrainingDataError(
                f"--short_seq_prob must be in [0, 1], got {self.short_seq_prob!r}")
        if not isinstance(self.random_seed, int) or isinstance(self.random_seed, bool):
            raise PretrainingDataError(
                f"--random_seed must be an integer, got {self.random_seed!r}")
        if self.sentence_splitting not in SENTENCE_SPLITTING:
            raise PretrainingDataError(
                f"--sentence_splitting={self.sentence_splitting!r}: use one of "
                f"{', '.join(SENTENCE_SPLITTING)}")
        for flag, name, allowed in (("model", "family", tuple(FAMILIES)),
                                    ("sentence_objective", "sentence_objective",
                                     SENTENCE_OBJECTIVES)):
            if getattr(self, name) not in allowed:
                raise PretrainingDataError(f"--{flag}={getattr(self, name)!r}: use one of "
                                           f"{', '.join(allowed)}")
        token_types = FAMILIES[self.family].get("type_vocab_size", 2)
        if self.sentence_objective != "none" and token_types < 2:
            raise PretrainingDataError(
                f"--sentence_objective={self.sentence_objective} writes pairs with segment ids "
                f"0 and 1, but --model={self.family} has {token_types} token type(s); use "
                "--sentence_objective=none")
        if self.documents_per_chunk < 2:
            raise PretrainingDataError(
                f"--documents_per_chunk={self.documents_per_chunk} must be at least 2: NotNext "
                "segments come from another document of the same chunk")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
