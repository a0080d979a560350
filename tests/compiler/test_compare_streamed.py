"""compare() streams its inputs through both graphs in chunks: the same numbers as one comparison
of the whole batch (ExportReference, which keeps every tensor), never more than a chunk per run."""
from __future__ import annotations

import importlib

import numpy as np
import onnx
from _builders import abc_net, export_abc
from onnx import numpy_helper

from abcn_hw.compiler import lower
from abcn_hw.compiler.compare import ExportReference, bit_probes, compare


def _perturbed(low: onnx.ModelProto) -> onnx.ModelProto:
    """The lowered graph with the threshold direction of every third channel flipped: some bits and
    outputs differ from the export's, so the counts are not trivially 1."""
    m = onnx.ModelProto.FromString(low.SerializeToString())
    sign = {n.input[3] for n in m.graph.node if n.op_type == "MultiBaseThreshold"}
    for init in m.graph.initializer:
        if init.name in sign:
            s = numpy_helper.to_array(init).copy()
            s[::3] *= -1
            init.CopyFrom(numpy_helper.from_array(s, init.name))
    return m


def test_streamed_compare_equals_whole_batch(monkeypatch):
    spec = dict(convs=[(6, 3, 1, 1), (8, 3, 2, 1)], m=[2, 3, 2], n=[2, 2, 3], hw=10, pool=None, classes=5)
    net, x = abc_net(spec, 4)
    exp = export_abc(net, (1, 10, 10))
    low, _ = lower(exp)
    bad = _perturbed(low.model)
    whole = ExportReference(exp, x, len(x)).compare(bad, keep_output=True)
    assert whole.output_equal < 1.0 and any(v < 1.0 for v in whole.layer_equal_bits.values())

    compare_mod = importlib.import_module("abcn_hw.compiler.compare")  # the package exports the function
    sizes = []
    real_run = compare_mod.run

    def spy(sess, xs, batch=256, outputs=None):
        sizes.append(len(xs))
        return real_run(sess, xs, batch, outputs)

    monkeypatch.setattr(compare_mod, "run", spy)
    streamed = compare(exp, bad, x, batch=7, keep_output=True)
    assert max(sizes) <= 7 and sum(sizes) == 2 * len(x)  # both graphs, chunk by chunk
    assert streamed.images == whole.images == len(x)
    assert streamed.summary() == whole.summary()
    np.testing.assert_array_equal(streamed.lowered_output, whole.lowered_output)
    assert set(streamed.layer_equal_bits) == set(bit_probes(bad)) != set()


def test_chunk_follows_the_memory_budget(monkeypatch):
    """Without ``batch``, the chunk comes from the tensors of one image and CHUNK_BYTES: a tiny
    budget streams image by image, a large one takes the whole (small) batch at once; same numbers."""
    spec = dict(convs=[(6, 3, 1, 1)], m=[2, 2], n=[2, 2], hw=10, pool=None, classes=4)
    net, x = abc_net(spec, 6)
    x = x[:20]
    exp = export_abc(net, (1, 10, 10))
    low = _perturbed(lower(exp)[0].model)
    compare_mod = importlib.import_module("abcn_hw.compiler.compare")
    real_run = compare_mod.run
    results = {}
    for budget in (1, 1 << 40):
        sizes = []

        def spy(sess, xs, batch=256, outputs=None):
            sizes.append(len(xs))
            return real_run(sess, xs, batch, outputs)

        monkeypatch.setattr(compare_mod, "run", spy)
        monkeypatch.setattr(compare_mod, "CHUNK_BYTES", budget)
        results[budget] = compare(exp, low, x, keep_output=True)
        assert sizes == ([1] * 2 * len(x) if budget == 1 else [len(x)] * 2)
    assert results[1].summary() == results[1 << 40].summary()
    np.testing.assert_array_equal(results[1].lowered_output, results[1 << 40].lowered_output)
