"""Encoders, heads and whole models of the BERT family."""

from kbert.models.encoder import BertEncoder
from kbert.models.heads import MaskedLMHead, NextSentenceHead, gather_positions
from kbert.models.pretrainer import BertPretrainer, encoder_inputs
from kbert.models.pretraining_losses import (losses_from_terms, pretraining_loss_terms,
                                             pretraining_losses)
from kbert.models.saving import load, load_tokenizer, save_pretrained
from kbert.models.student import distilbert_from_teacher, student_layer_indices

__all__ = ["BertEncoder", "BertPretrainer", "MaskedLMHead", "NextSentenceHead",
           "distilbert_from_teacher", "encoder_inputs", "gather_positions", "load", "load_tokenizer",
           "losses_from_terms", "pretraining_loss_terms", "pretraining_losses",
           "save_pretrained", "student_layer_indices"]
