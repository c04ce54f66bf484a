"""reshape / transpose / broadcast_to / slice become views (new sizes and strides over the same
data); reshape of a non-contiguous array and concatenate copy."""
from __future__ import annotations

from ..context import Arr, contiguous_strides
from .loops import copy


def _view(arr, data, shape, strides, value, contiguous):
    return Arr(data, shape, strides, arr.dtype, value.type.shape, contiguous, arr.owner)


def lower_reshape(ctx, node, args):
    (x,) = args
    v = node.out
    if not x.contiguous:
        tmp = ctx.malloc_buffer(x.dtype, x.dims)
        copy(ctx, x, tmp)
        x = tmp
    shape = [ctx.dim(d) for d in v.type.shape]
    strides = contiguous_strides(ctx.builder, shape, x.dtype.itemsize, ctx.i64)
    return [_view(x, x.data, shape, strides, v, True)]


def lower_transpose(ctx, node, args):
    (x,) = args
    perm = node.params["perm"]
    trivial = list(perm) == sorted(perm)
    return [_view(x, x.data, [x.shape[p] for p in perm], [x.strides[p] for p in perm],
                  node.out, x.contiguous and trivial)]


def lower_broadcast_to(ctx, node, args):
    (x,) = args
    b = ctx.builder
    v = node.out
    shape = [ctx.dim(d) for d in v.type.shape]
    lead = v.ndim - x.ndim
    strides = [ctx.i64(0)] * lead
    for j in range(x.ndim):
        if x.dims[j].value == 1:
            strides.append(ctx.i64(0))
        elif x.dims[j] == v.type.shape[lead + j]:
            strides.append(x.strides[j])
        else:
            strides.append(b.select(b.icmp_signed("==", x.shape[j], ctx.i64(1)), ctx.i64(0), x.strides[j]))
    same = lead == 0 and all(x.dims[j] == v.type.shape[j] for j in range(x.ndim))
    return [_view(x, x.data, shape, strides, v, x.contiguous and same)]


def lower_slice(ctx, node, args):
    return [slice_view(ctx, args[0], node.params["specs"], node.out.type.shape)]


def slice_view(ctx, x, specs, dims):
    """The view ``x[specs]`` (specs as in the `slice` primitive), with symbolic ``dims``."""
    b = ctx.builder
    offset = ctx.i64(0)
    shape, strides = [], []
    for axis, s in enumerate(specs):
        if s[0] == "index":
            i = ctx.i64(s[1])
            if s[1] < 0:
                i = b.add(i, x.shape[axis])
            offset = b.add(offset, b.mul(i, x.strides[axis]))
        else:
            _, start, step, size = s
            offset = b.add(offset, b.mul(ctx.dim(start), x.strides[axis]))
            shape.append(ctx.dim(size))
            strides.append(b.mul(x.strides[axis], ctx.i64(step)))
    shape += x.shape[len(specs):]
    strides += x.strides[len(specs):]
    contiguous = x.contiguous and all(s[0] == "index" for s in specs)
    return Arr(b.gep(x.data, [offset]), shape, strides, x.dtype, dims, contiguous, x.owner)


def lower_concatenate(ctx, node, args):
    b = ctx.builder
    axis = node.params["axis"]
    out = ctx.new_array(node.out)
    start = ctx.i64(0)
    for x in args:
        region_shape = list(out.shape)
        region_shape[axis] = x.shape[axis]
        data = b.gep(out.data, [b.mul(start, out.strides[axis])])
        region = Arr(data, region_shape, out.strides, out.dtype, x.dims, False)
        copy(ctx, x, region)
        start = b.add(start, x.shape[axis])
    return [out]


LOWER = {"reshape": lower_reshape, "transpose": lower_transpose,
         "broadcast_to": lower_broadcast_to, "slice": lower_slice,
         "concatenate": lower_concatenate}
