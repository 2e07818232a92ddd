"""TFLite Model Metadata (`metadata_schema.fbs`), the standard app runtimes read.

MediaPipe Tasks' `TextClassifier` (Android, iOS, web, Python) reads a BERT classifier's
tokenizer and labels from it: an input process unit (`BertTokenizerOptions` with
`vocab.txt`, or `SentencePieceTokenizerOptions` with `spiece.model`), the three input
tensors by their metadata names (`ids`, `mask`, `segment_ids`) and the labels as a
`TENSOR_AXIS_LABELS` file on the output. The metadata is built with the schema's generated
Python classes that ship in the `mediapipe` wheel and stored as the schema prescribes: a
flatbuffer (identifier `M001`) in the model's `TFLITE_METADATA` buffer, the associated files
in a zip archive appended to the model (what `MetadataPopulator` writes; LiteRT ignores it).

Example:
    >>> buffer = build_model_metadata("fortunes", "Classifies fortunes.", "1", "kbert",
    ...                               input_order(data), "wordpiece", "vocab.txt", 16)  # doctest: +SKIP
    >>> data = populate(data, buffer, {"vocab.txt": vocab, "labels.txt": labels})  # doctest: +SKIP
    >>> describe(data)["subgraph_metadata"][0]["input_process_units"][0]["options_type"]  # doctest: +SKIP
    'BertTokenizerOptions'
"""

from __future__ import annotations

import io
import re
import zipfile

import flatbuffers

from kbert.export import flatbuffer

METADATA_FIELD = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
# MediaPipe's BertPreprocessorCalculator finds the three inputs by these metadata names.
INPUT_NAMES = ("ids", "mask", "segment_ids")
INPUT_DESCRIPTIONS = {
    "ids": "Token ids of `[CLS] pieces [SEP]`, padded with 0 ([PAD]).",
    "mask": "1 for every real token ([CLS], pieces, [SEP]), 0 for padding.",
    "segment_ids": "0 for the first (only) text.",
}
# The schema's history (metadata_schema.fbs): the parser version each feature needs.
FEATURE_VERSIONS = {"vocabulary_file": (1, 0, 1), "input_process_units": (1, 1, 0),
                    "bert_tokenizer": (1, 1, 0), "sentencepiece_tokenizer": (1, 1, 0)}
BASE_VERSION = (1, 0, 0)


def schema():
    """The schema's generated classes (`metadata_schema_py_generated`, mediapipe wheel)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated
    return metadata_schema_py_generated


def _file(fb, name: str, description: str, kind: str):
    found = fb.AssociatedFileT()
    found.name, found.description = name, description
    found.type = getattr(fb.AssociatedFileType, kind)
    return found


def _tensor(fb, name: str, description: str, files=(), stats=None):
    tensor = fb.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = fb.ContentT()
    tensor.content.contentPropertiesType = fb.ContentProperties.FeatureProperties
    tensor.content.contentProperties = fb.FeaturePropertiesT()
    if stats is not None:
        tensor.stats = fb.StatsT()
        tensor.stats.min, tensor.stats.max = [stats[0]], [stats[1]]
    tensor.associatedFiles = list(files) or None
    return tensor


def tokenizer_unit(fb, tokenizer_type: str, file_name: str):
    """The input process unit for `tokenizer_type` ("wordpiece" or "sentencepiece")."""
    unit = fb.ProcessUnitT()
    if tokenizer_type == "wordpiece":
        unit.optionsType = fb.ProcessUnitOptions.BertTokenizerOptions
        unit.options = fb.BertTokenizerOptionsT()
        unit.options.vocabFile = [_file(fb, file_name, "WordPiece vocabulary, one token a "
                                        "line; a token's id is its line number.",
                                        "VOCABULARY")]
    elif tokenizer_type == "sentencepiece":
        unit.optionsType = fb.ProcessUnitOptions.SentencePieceTokenizerOptions
        unit.options = fb.SentencePieceTokenizerOptionsT()
        unit.options.sentencePieceModel = [_file(fb, file_name, "SentencePiece model.",
                                                 "DESCRIPTIONS")]
    else:
        raise ValueError(f"no TFLite Model Metadata process unit for a {tokenizer_type} "
                         f"tokenizer (the schema has WordPiece and SentencePiece units)")
    return unit


def min_parser_version(metadata) -> str:
    """The lowest metadata parser version that reads `metadata` (a `ModelMetadataT`), from
    the features it uses (the schema's version history)."""
    fb = schema()
    used = [BASE_VERSION]
    files = list(metadata.associatedFiles or [])
    for graph in metadata.subgraphMetadata or []:
        if graph.inputProcessUnits:
            used.append(FEATURE_VERSIONS["input_process_units"])
        for unit in graph.inputProcessUnits or []:
            if unit.optionsType == fb.ProcessUnitOptions.BertTokenizerOptions:
                used.append(FEATURE_VERSIONS["bert_tokenizer"])
                files += unit.options.vocabFile or []
            if unit.optionsType == fb.ProcessUnitOptions.SentencePieceTokenizerOptions:
                used.append(FEATURE_VERSIONS["sentencepiece_tokenizer"])
                files += unit.options.sentencePieceModel or []
        for tensor in [*(graph.inputTensorMetadata or []), *(graph.outputTensorMetadata or [])]:
            files += tensor.associatedFiles or []
    if any(f.type == fb.AssociatedFileType.VOCABULARY for f in files):
        used.append(FEATURE_VERSIONS["vocabulary_file"])
    return ".".join(str(n) for n in max(used))


def build_model_metadata(name: str, description: str, version: str, author: str,
                         input_order, tokenizer_type: str, tokenizer_file: str,
                         num_labels: int, extra_files=()) -> bytes:
    """The metadata flatbuffer for a classifier whose subgraph inputs are `input_order`
    (metadata names `ids`/`mask`/`segment_ids`, in the subgraph's order) and whose one output
    is probabilities over `num_labels` labels (`labels.txt`). `extra_files`: (name,
    description) of further model-level associated files."""
    fb = schema()
    model = fb.ModelMetadataT()
    model.name, model.description, model.version, model.author = \
        name, description, version, author
    model.license = "The model's own license (kbert adds none)."
    graph = fb.SubGraphMetadataT()
    graph.inputTensorMetadata = [_tensor(fb, n, INPUT_DESCRIPTIONS[n]) for n in input_order]
    labels = _file(fb, LABELS_FILE, f"The {num_labels} labels, one a line, in the order "
                   "of the output's scores.", "TENSOR_AXIS_LABELS")
    graph.outputTensorMetadata = [_tensor(fb, "probabilities", "Softmax probability of "
                                          "each label.", [labels], stats=(0.0, 1.0))]
    graph.inputProcessUnits = [tokenizer_unit(fb, tokenizer_type, tokenizer_file)]
    model.subgraphMetadata = [graph]
    model.associatedFiles = [_file(fb, n, d, "DESCRIPTIONS") for n, d in extra_files] or None
    model.minParserVersion = min_parser_version(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _archive_start(data: bytes) -> int | None:
    """Where the appended zip archive begins (zipfile reports absolute header offsets,
    skipping the model before it), or None without one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            offsets = [info.header_offset for info in archive.infolist()]
    except zipfile.BadZipFile:    # no archive (or weights that merely look like its end)
        return None
    return min(offsets) if offsets else None


def populate(data: bytes, metadata_buffer: bytes, files: dict) -> bytes:
    """`data` with `metadata_buffer` as its `TFLITE_METADATA` and `files` ({name: bytes})
    in the appended archive (an earlier archive and metadata are replaced)."""
    data = flatbuffer.add_metadata(strip_archive(data), {METADATA_FIELD: metadata_buffer})
    out = io.BytesIO()
    out.write(data)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, value in files.items():
            archive.writestr(name, bytes(value))
    return out.getvalue()


def strip_archive(data: bytes) -> bytes:
    """`data` without its appended associated-files archive, if it has one."""
    start = _archive_start(data)
    return data if start is None else data[:start]


def associated_files(data: bytes) -> dict:
    """{name: bytes} of the archive appended to a `.tflite` (empty when none)."""
    if _archive_start(data) is None:
        return {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _plain(value, fb, field=""):
    """A generated `...T` object as JSON-able dicts/lists, enums by name."""
    if isinstance(value, list):
        return [_plain(v, fb, field) for v in value]
    if hasattr(value, "__dict__") and type(value).__name__.endswith("T"):
        return {_snake(k): _plain(v, fb, k) for k, v in vars(value).items() if v is not None}
    enums = {"type": fb.AssociatedFileType, "optionsType": fb.ProcessUnitOptions,
             "contentPropertiesType": fb.ContentProperties}
    if field in enums and isinstance(value, int):
        return next((k for k, v in vars(enums[field]).items() if v == value), value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def read_metadata_buffer(data: bytes) -> bytes | None:
    """The `TFLITE_METADATA` flatbuffer of a `.tflite`, or None."""
    return flatbuffer.read_metadata_buffers(data).get(METADATA_FIELD)


def describe(data: bytes) -> dict | None:
    """The standard metadata of a `.tflite` as a dict (schema field names in snake case),
    with `associated_files_packed`: the archive's file names and sizes. None without it."""
    found = read_metadata_buffer(data)
    if found is None:
        return None
    fb = schema()
    if found[4:8] != METADATA_IDENTIFIER:
        raise ValueError("its TFLITE_METADATA is not a metadata flatbuffer (no M001)")
    model = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(found, 0))
    result = _plain(model, fb)
    result["associated_files_packed"] = {name: len(value) for name, value
                                         in associated_files(data).items()}
    return result


def input_order(data: bytes) -> list:
    """The signature input names of subgraph 0's inputs, in the subgraph's order (the order
    the metadata's input tensors must follow)."""
    from ai_edge_litert import schema_py_generated as tfl
    model = tfl.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1 or model.SignatureDefsLength() != 1:
        raise ValueError(f"an app-ready .tflite has one subgraph and one signature (this one "
                         f"has {model.SubgraphsLength()} and {model.SignatureDefsLength()})")
    signature = model.SignatureDefs(0)
    names = {signature.Inputs(i).TensorIndex(): signature.Inputs(i).Name().decode()
             for i in range(signature.InputsLength())}
    graph = model.Subgraphs(0)
    return [names[graph.Inputs(i)] for i in range(graph.InputsLength())]


def classifier_metadata(data: bytes, meta: dict, tokenizer_file: str,
                        extra_files=()) -> bytes:
    """The metadata flatbuffer of an app-ready kbert classifier (`data`: its `.tflite`,
    `meta`: kbert's metadata dict: labels, family, tokenizer, mode, max length)."""
    order = input_order(data)
    if sorted(order) != sorted(INPUT_NAMES):
        raise ValueError(f"an app-ready .tflite takes {', '.join(INPUT_NAMES)} (this one "
                         f"takes {', '.join(order)})")
    labels = meta["labels"]
    shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
    description = (f"Classifies a text into one of {len(labels)} labels ({shown}). "
                   f"{meta['family']} encoder, {meta['mode']}, up to "
                   f"{meta['max_seq_length']} tokens; inputs: WordPiece/SentencePiece ids of "
                   f"[CLS] text [SEP]. Exported and verified by kbert export.tflite.")
    return build_model_metadata(
        name=meta.get("name") or f"kbert {meta['family']} text classifier",
        description=description, version=f"kbert {meta['kbert_version']}",
        author="kbert export.tflite", input_order=order,
        tokenizer_type=meta["tokenizer"]["type"], tokenizer_file=tokenizer_file,
        num_labels=len(labels), extra_files=extra_files)
