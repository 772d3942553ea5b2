"""Free an exported detector's fixed input size, without the `onnx` package.

YOLOX (and most YOLO exports) are fully convolutional, but the exported graph declares a
fixed `1x3x416x416` input, so ONNX Runtime refuses a 160x224 crop. Running the detector on
a crop costs about its area, which is what makes motion-gated detection cheap, so the loader
rewrites the model's declared shapes: the input's batch, height and width and every output
dimension become symbolic, the recorded intermediate shapes (`value_info`) are dropped for
the runtime to infer again, and a `Reshape` target `[1, C, -1]` becomes `[0, C, -1]` (keep
the batch dimension) so several crops run as one batch.

This edits the protobuf wire format directly (ModelProto.graph = 7; GraphProto.initializer
= 5, input = 11, output = 12, value_info = 13; ValueInfoProto.type = 2; TypeProto
.tensor_type = 1; TypeProto.Tensor.shape = 2; TensorShapeProto.dim = 1; Dimension
.dim_value = 1, dim_param = 2; TensorProto.dims = 1, data_type = 2, int64_data = 7,
raw_data = 9), so it needs nothing beyond the standard library."""

from __future__ import annotations

import struct

Field = tuple[int, int, bytes | int]  # (number, wire type, payload or varint value)

_INT64 = 7  # TensorProto.DataType.INT64


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 70:
            raise ValueError("malformed protobuf varint")


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse(data: bytes) -> list[Field]:
    """The fields of one protobuf message, in order."""
    fields: list[Field] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, wire, value))
        elif wire == 1:
            fields.append((number, wire, data[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            fields.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire == 5:
            fields.append((number, wire, data[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def serialize(fields: list[Field]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _enc_varint((number << 3) | wire)
        if wire == 0:
            assert isinstance(value, int)
            out += _enc_varint(value)
        else:
            assert isinstance(value, bytes)
            if wire == 2:
                out += _enc_varint(len(value))
            out += value
    return bytes(out)


def _edit(msg: bytes, number: int, fn: object) -> bytes:
    """Apply `fn(payload) -> payload | None` to every length-delimited field `number`
    (None drops the field)."""
    out: list[Field] = []
    for f in parse(msg):
        if f[0] == number and f[1] == 2:
            new = fn(f[2])  # type: ignore[operator]
            if new is None:
                continue
            out.append((number, 2, new))
        else:
            out.append(f)
    return serialize(out)


def _symbolic_dims(value_info: bytes, names: dict[int, str] | None) -> bytes:
    """A ValueInfoProto whose tensor dims are symbolic (`names[i]`, or all when None)."""

    def shape(sh: bytes) -> bytes:
        out: list[Field] = []
        i = 0
        for f in parse(sh):
            if f[0] == 1 and f[1] == 2:
                name = names.get(i) if names is not None else f"d{i}"
                if name is not None:
                    f = (1, 2, serialize([(2, 2, name.encode())]))
                i += 1
            out.append(f)
        return serialize(out)

    def tensor(t: bytes) -> bytes:
        return _edit(t, 2, shape)

    def type_(tp: bytes) -> bytes:
        return _edit(tp, 1, tensor)

    return _edit(value_info, 2, type_)


def _keep_batch_in_reshape(init: bytes) -> bytes:
    """An INT64 [1, C, -1] initializer (a Reshape target) becomes [0, C, -1]."""
    fields = parse(init)
    dims = [v for n, w, v in fields if n == 1 and w == 0]
    packed_dims = [v for n, w, v in fields if n == 1 and w == 2]
    if packed_dims:
        dims = []
        p = 0
        raw = packed_dims[0]
        assert isinstance(raw, bytes)
        while p < len(raw):
            d, p = _varint(raw, p)
            dims.append(d)
    dtype = next((v for n, w, v in fields if n == 2 and w == 0), None)
    if dtype != _INT64 or dims != [3]:
        return init
    out: list[Field] = []
    for n, w, v in fields:
        if n == 9 and w == 2 and isinstance(v, bytes) and len(v) == 24:
            a, c, b = struct.unpack("<qqq", v)
            if a == 1 and b == -1 and c > 0:
                v = struct.pack("<qqq", 0, c, -1)
        out.append((n, w, v))
    return serialize(out)


def make_dynamic(model: bytes) -> bytes:
    """The model with a free batch/height/width input and batch-preserving reshapes."""
    first_input = [True]

    def graph(g: bytes) -> bytes:
        out: list[Field] = []
        for f in parse(g):
            number, wire, value = f
            if wire == 2 and isinstance(value, bytes):
                if number == 11 and first_input[0]:
                    first_input[0] = False
                    value = _symbolic_dims(value, {0: "batch", 2: "height", 3: "width"})
                elif number == 12:
                    value = _symbolic_dims(value, None)
                elif number == 13:
                    continue  # recorded intermediate shapes: let the runtime infer them
                elif number == 5:
                    value = _keep_batch_in_reshape(value)
            out.append((number, wire, value))
        return serialize(out)

    return _edit(model, 7, graph)
