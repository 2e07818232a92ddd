"""The one error inspection raises for bad input: its message names the file, line or flag."""


class InspectionError(ValueError):
    """Bad input to an inspection: a word missing from a sentence, an empty sentence file,
    a model without a masked-LM head. The message is one line a user can act on.

    Example:
        >>> str(InspectionError("bank.txt:3: the word 'bank' is not in this sentence"))
        "bank.txt:3: the word 'bank' is not in this sentence"
    """
