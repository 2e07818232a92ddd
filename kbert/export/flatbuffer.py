"""Read and edit `.tflite` flatbuffers: which ops a model uses, and metadata buffers inside.

A `.tflite` file is a flatbuffer (`tflite/schema.fbs`). Its `metadata` list maps names to
buffers; LiteRT ignores names it does not know, so kbert stores its own there
(`kbert_metadata`: JSON; `kbert_vocab`: the `vocab.txt` bytes) and the app needs one file.

Example:
    >>> data = open("model.tflite", "rb").read()                      # doctest: +SKIP
    >>> sorted(op_names(data))[:3]                                    # doctest: +SKIP
    ['ADD', 'BATCH_MATMUL', 'CONCATENATION']
    >>> data = add_metadata(data, {"kbert_metadata": b"{}"})          # doctest: +SKIP
    >>> read_metadata_buffers(data)["kbert_metadata"]                 # doctest: +SKIP
    b'{}'
"""

from __future__ import annotations

import collections
import hashlib
import struct

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_") and isinstance(value, int)}
_TENSOR_TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items()
                      if not name.startswith("_") and isinstance(value, int)}
FILE_IDENTIFIER = b"TFL3"


class DamagedModelError(ValueError):
    """A `.tflite` whose flatbuffer cannot be read: truncated or damaged."""


def _model(data: bytes):
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ValueError("not a .tflite flatbuffer (no TFL3 identifier)")
    return schema.Model.GetRootAsModel(data, 0)


def _readable(read):
    """Run a flatbuffer read; a truncated or damaged file (offsets past its end) becomes one
    `DamagedModelError` instead of `struct.error`/`IndexError` from deep in the reader."""
    try:
        return read()
    except (struct.error, IndexError, UnicodeDecodeError, OverflowError) as e:
        raise DamagedModelError(f"truncated or damaged .tflite flatbuffer ({e})") from None


def _buffer_bytes(data: bytes, buffer) -> bytes:
    if buffer.Offset() > 1:   # stored after the flatbuffer (models over 2 GB)
        end = buffer.Offset() + buffer.Size()
        if end > len(data):
            raise DamagedModelError(f"a buffer ends at byte {end}, past the file's "
                                    f"{len(data)} bytes (truncated)")
        return bytes(data[buffer.Offset():end])
    return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""


def weights_sha256(data: bytes) -> str:
    """SHA-256 over every buffer a tensor uses (weights, constants), in order:
    what export.tflite verified, independent of metadata added afterwards. A file damaged
    in its weights no longer matches; one damaged in its structure fails to parse."""
    def read():
        model = _model(data)
        used = set()
        for g in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(g)
            used.update(subgraph.Tensors(t).Buffer() for t in range(subgraph.TensorsLength()))
        metadata = {model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
        digest = hashlib.sha256()
        for i in sorted(used - metadata):
            chunk = _buffer_bytes(data, model.Buffers(i))
            digest.update(len(chunk).to_bytes(8, "little"))
            digest.update(chunk)
        return digest.hexdigest()
    return _readable(read)


def _opcode_name(opcode) -> str:
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.CustomCode()
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


def _operators(data: bytes):
    """(op name, subgraph, operator) for every operator of every subgraph."""
    model = _model(data)
    names = [_opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            yield names[op.OpcodeIndex()], graph, op


def op_names(data: bytes) -> collections.Counter:
    """How often each op (builtin name, or custom code such as `FlexEinsum`) runs in the
    model, over all subgraphs."""
    return collections.Counter(name for name, _, _ in _operators(data))


def op_kernel_types(data: bytes) -> collections.Counter:
    """Counts of `(op, input dtype, weight dtype)`: e.g. `('FULLY_CONNECTED', 'INT8', 'INT8')`
    shows an int8 kernel; the weight dtype is the second input's (the constant operand)."""
    counts = collections.Counter()
    for name, graph, op in _operators(data):
        types = []
        for k in range(min(2, op.InputsLength())):
            index = op.Inputs(k)
            types.append("-" if index < 0 else
                         _TENSOR_TYPE_NAMES.get(graph.Tensors(index).Type(), "?"))
        counts[(name, *types)] += 1
    return counts


def read_metadata_buffers(data: bytes) -> dict:
    """The model's metadata entries: name -> raw bytes."""
    def read():
        model = _model(data)
        entries = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            entries[entry.Name().decode()] = _buffer_bytes(data, model.Buffers(entry.Buffer()))
        return entries
    return _readable(read)


def add_metadata(data: bytes, entries: dict) -> bytes:
    """A copy of the model with `entries` (name -> bytes) added as metadata buffers;
    entries of the same name are replaced. Buffers stored after the flatbuffer (as
    ai-edge-quantizer writes them) are moved inline, so re-packing keeps their bytes."""
    model = schema.ModelT.InitFromObj(_model(data))
    for buffer in model.buffers or []:
        if buffer.offset > 1:
            buffer.data = np.frombuffer(data[buffer.offset:buffer.offset + buffer.size],
                                        dtype=np.uint8)
            buffer.offset = buffer.size = 0
    replaced = [m for m in (model.metadata or []) if m.name.decode() in entries]
    for m in replaced:               # the old bytes go; indices stay as they are
        model.buffers[m.buffer].data = None
    model.metadata = [m for m in (model.metadata or [])
                      if m.name.decode() not in entries]
    for name, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(bytes(value), dtype=np.uint8)
        model.buffers.append(buffer)
        meta = schema.MetadataT()
        meta.name = name.encode()
        meta.buffer = len(model.buffers) - 1
        model.metadata.append(meta)
    builder = flatbuffers.Builder(len(data) + sum(len(v) for v in entries.values()) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
