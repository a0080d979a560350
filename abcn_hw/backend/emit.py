"""The project's generated C++ around the kernels: it only wires the library together.

Generated sources (paths relative to the build dir):
  src/config.hpp         stream word types, per-image word counts, stage table
  src/params_<id>.hpp    written by the kernels that have parameters (kernels.mvu)
  src/top.hpp/.cpp       ``abcn_top``: DATAFLOW region: one ``hls::stream`` per edge of the kernel
                         graph (with its FIFO depth), one call per kernel (the kernel class prints it)
  tb/csim_driver.cpp     C-simulation driver: batch of images from a file, one process
"""
from __future__ import annotations

from .cpp import Cpp, uint_t
from .graph import HwGraph, stream_names
from .io import stream_words_per_image, tap_list
from .ir import Network
from .kernels.int_mvu import IntMVU
from .kernels.mvu import HEADER_NOTE, _guard
from .kernels.sliding_window import SlidingWindow

TOP = "abcn_top"
IMAGES_PER_CALL = 64


# -- config / top ---------------------------------------------------------------------------------

def config_header(net: Network, graph: HwGraph) -> str:
    in_words, in_w, out_words, out_w = stream_words_per_image(graph)
    taps = tap_list(graph)
    stages = graph.nodes
    c = Cpp()
    c.comment(HEADER_NOTE)
    c.comment(f"Network {net.name}: {len(net.layers)} layers, {len(stages)} dataflow stages")
    _guard(c, "ABCN_CONFIG_HPP")
    c.line()
    c.comment("stream words up to 4096 bits (the folding is checked against this when generating)")
    c.raw("#ifndef AP_INT_MAX_W")
    c.raw("#define AP_INT_MAX_W 4096")
    c.raw("#endif")
    c.raw("#include <abcn/abcn.hpp>")
    c.line()
    c.line(f"typedef {uint_t(in_w)} abcn_in_t;")
    c.line(f"typedef {uint_t(out_w)} abcn_out_t;")
    c.line(f"constexpr unsigned ABCN_IN_WIDTH = {in_w};")
    c.line(f"constexpr unsigned ABCN_OUT_WIDTH = {out_w};")
    c.line(f"constexpr unsigned ABCN_IN_WORDS = {in_words};   // per image")
    c.line(f"constexpr unsigned ABCN_OUT_WORDS = {out_words};  // per image")
    c.line(f"constexpr unsigned ABCN_NUM_STAGES = {len(stages)};")
    c.line(f"constexpr unsigned ABCN_NUM_TAPS = {len(taps)};")
    c.line()
    c.comment("HLS pragmas of the generated code go through _Pragma, so g++ -Wall -Werror (which does not")
    c.comment("know them) compiles it; Vitis HLS defines __SYNTHESIS__ and sees them.")
    c.raw("#define ABCN_HLS_STR(x) #x")
    c.raw("#if defined(__SYNTHESIS__)")
    c.raw("#define ABCN_HLS(x) _Pragma(ABCN_HLS_STR(HLS x))")
    c.raw("#else")
    c.raw("#define ABCN_HLS(x)")
    c.raw("#endif")
    c.line()
    c.comment("C simulation only: per-stage loop-iteration counters (an extra top argument; hls.tcl defines")
    c.comment("ABCN_NO_COUNTERS so that Vitis csim/cosim see the synthesised signature) and per-layer taps")
    c.raw("#if !defined(__SYNTHESIS__) && !defined(ABCN_NO_COUNTERS)")
    c.raw("#define ABCN_TOP_COUNTERS_DECL , ::abcn::IterCounter *counters = nullptr")
    c.raw("#define ABCN_TOP_COUNTERS_DEF , ::abcn::IterCounter *counters")
    c.raw("#define ABCN_TOP_COUNTERS_ARG(c) , (c)")
    c.raw("#define ABCN_STAGE_COUNTER(i) ABCN_COUNTER_ARG(counters ? &counters[i] : nullptr)")
    c.raw("#else")
    c.raw("#define ABCN_TOP_COUNTERS_DECL")
    c.raw("#define ABCN_TOP_COUNTERS_DEF")
    c.raw("#define ABCN_TOP_COUNTERS_ARG(c)")
    c.raw("#define ABCN_STAGE_COUNTER(i)")
    c.raw("#endif")
    c.raw('#include "abcn_backend.hpp"')
    c.raw("#if defined(ABCN_CSIM_DUMP) && !defined(__SYNTHESIS__)")
    c.raw('#include "csim_tap.hpp"')
    c.raw("#define ABCN_TAP(s, i) abcn_csim::tap(s, i)")
    c.raw("#else")
    c.raw("#define ABCN_TAP(s, i) do { } while (0)")
    c.raw("#endif")
    c.line()
    c.raw("#endif")
    return c.text()


def top_header() -> str:
    c = Cpp()
    c.comment(HEADER_NOTE)
    _guard(c, "ABCN_TOP_HPP")
    c.line()
    c.raw('#include "config.hpp"')
    c.line()
    c.comment("images: number of images streamed through in this call (ABCN_IN_WORDS words in, ABCN_OUT_WORDS out each)")
    c.line(f"void {TOP}(hls::stream<abcn_in_t> &in, hls::stream<abcn_out_t> &out, unsigned images ABCN_TOP_COUNTERS_DECL);")
    c.line()
    c.raw("#endif")
    return c.text()


def top_source(net: Network, graph: HwGraph) -> str:
    kernels = graph.topo_order()
    names = stream_names(graph)
    c = Cpp()
    c.comment(HEADER_NOTE)
    c.raw('#include "top.hpp"')
    for k in kernels:
        for inc in k.includes():
            c.raw(f'#include "{inc}"')
    c.line()
    c.comment("Dataflow pipeline (stage: kernel, cycles per image at II=1):")
    for i, k in enumerate(kernels):
        c.comment(f"  {i:3d} {k.ident}: {k.kind}, {k.cycles()} cycles")
    with c.block(f"void {TOP}(hls::stream<abcn_in_t> &in, hls::stream<abcn_out_t> &out, unsigned images "
                 "ABCN_TOP_COUNTERS_DEF)"):
        c.pragma("INTERFACE axis port = in")
        c.pragma("INTERFACE axis port = out")
        c.pragma("INTERFACE s_axilite port = images")
        c.pragma("INTERFACE s_axilite port = return")
        c.pragma("DATAFLOW")
        for k in kernels:
            k.top_pragmas(c)
        for k in kernels:
            for e in graph.out_edges(k):
                if e.dst is None:
                    continue
                s = names[id(e)]
                c.line(f"hls::stream<{uint_t(e.width)}> {s}(\"{s}\");")
                c.pragma(f"STREAM variable = {s} depth = {int(e.depth)}")
        tap_i = 0
        fused = _window_int_mvu_pairs(graph, kernels)
        for i, k in enumerate(kernels):
            ins = [names[id(e)] for e in graph.in_edges(k)]
            outs = [names[id(e)] for e in graph.out_edges(k)]
            if id(k) in fused:  # a window generator feeding an IntMVU: one fused call in the fast view
                mvu = fused[id(k)]
                c.raw("#if ABCN_CSIM_FAST")
                c.comment("C simulation, fast view: window generator + IntMVU as one convolution per image")
                mvu.call_after_window(c, k, ins[0], outs[0], names[id(graph.out_edge(mvu))],
                                      (f"ABCN_STAGE_COUNTER({i})", f"ABCN_STAGE_COUNTER({i + 1})"))
                c.raw("#else")
            if i > 0 and id(kernels[i - 1]) in fused:
                k.call(c, ins, outs, f"ABCN_STAGE_COUNTER({i})")
                c.raw("#endif")
            else:
                k.call(c, ins, outs, f"ABCN_STAGE_COUNTER({i})")
            for port, _ in k.taps():
                if outs[port] != "out":
                    c.line(f"ABCN_TAP({outs[port]}, {tap_i});")
                    tap_i += 1
    return c.text()


def _window_int_mvu_pairs(graph: HwGraph, kernels: list) -> dict:
    """{id(window generator): IntMVU} for every sliding window whose only output stream is the only
    input of the next kernel in ``kernels``, an IntMVU of the same layer (no tap or fork between
    them): the pairs the C-simulation fast view evaluates as one call."""
    pairs = {}
    for k, nxt in zip(kernels, kernels[1:]):
        if not (isinstance(k, SlidingWindow) and isinstance(nxt, IntMVU) and k.layer is nxt.layer):
            continue
        outs, ins = graph.out_edges(k), graph.in_edges(nxt)
        if len(outs) == 1 and len(ins) == 1 and outs[0] is ins[0] and not k.taps():
            pairs[id(k)] = nxt
    return pairs


CSIM_TAP_HPP = """// Generated by abcn-hw compile (backend glue, C simulation only): per-layer output taps.
// In C simulation the DATAFLOW kernels run one after the other, so after a producer returns its
// output stream holds all of its words: tap() copies them to a dump file and puts them back.
#ifndef ABCN_CSIM_TAP_HPP
#define ABCN_CSIM_TAP_HPP
#include <cstdint>
#include <cstdio>
#include <vector>

namespace abcn_csim {
extern std::FILE *tap_files[];

template <int W>
void tap(hls::stream<ap_uint<W> > &s, unsigned i) {
    std::vector<ap_uint<W> > words;
    while (!s.empty()) words.push_back(s.read());
    std::FILE *f = tap_files[i];
    for (size_t k = 0; k < words.size(); k++) {
        for (int lo = 0; lo < W; lo += 64) {
            const int hi = (lo + 63 < W - 1) ? lo + 63 : W - 1;
            const ap_uint<64> chunk = words[k](hi, lo);
            const std::uint64_t v = (std::uint64_t)chunk.to_uint64();
            if (f) std::fwrite(&v, sizeof v, 1, f);
        }
        s.write(words[k]);
    }
}
}  // namespace abcn_csim
#endif
"""


def driver_source(net: Network, graph: HwGraph) -> str:
    taps = tap_list(graph)
    c = Cpp()
    c.comment(HEADER_NOTE)
    c.comment("C-simulation driver: a whole batch in one process (images split over threads).")
    c.comment("usage: csim_driver IN.bin OUT.bin COUNTS.txt [THREADS [DUMP_DIR]]")
    c.comment("Built with -DABCN_CSIM_LIB -shared -fPIC (no main) it is the shared library abcn-hw csim loads:")
    c.comment("abcn_csim_batch() below runs a batch held in memory.")
    c.comment("IN.bin : uint64 LE header {0x4e4e4342, images, ABCN_IN_WORDS, chunks}, then images*ABCN_IN_WORDS")
    c.comment("         words of ceil(ABCN_IN_WIDTH/64) uint64 chunks each (chunk 0 = bits 0..63).")
    c.comment("OUT.bin: the same layout with ABCN_OUT_WORDS / ABCN_OUT_WIDTH.")
    c.comment("COUNTS : 'calls N seconds S threads T' (calls of abcn_top, wall time of the simulation loop), then per")
    c.comment("         stage: index iterations calls (abcn::IterCounter).")
    c.comment("DUMP_DIR (built with -DABCN_CSIM_DUMP, one thread): tap<i>.bin = words of each layer's output stream.")
    c.raw('#include "../src/top.hpp"')
    c.raw("#include <cstdint>")
    c.raw("#include <cstdio>")
    c.raw("#include <cstdlib>")
    c.raw("#include <string>")
    c.raw("#include <thread>")
    c.raw("#include <chrono>")
    c.raw("#include <vector>")
    c.line()
    c.raw("#ifdef ABCN_CSIM_DUMP")
    c.line(f"std::FILE *abcn_csim::tap_files[{max(1, len(taps))}];")
    c.raw("#endif")
    c.line()
    c.line(f"static const unsigned IMAGES_PER_CALL = {IMAGES_PER_CALL};")
    c.line("static const unsigned IN_CH = (ABCN_IN_WIDTH + 63) / 64, OUT_CH = (ABCN_OUT_WIDTH + 63) / 64;")
    c.line()
    c.comment("Stream words <-> 64-bit chunks: with the C-simulation fast paths through the words' storage")
    c.comment("(abcn::csim_store_chunks / csim_load_chunks, common.hpp), else by range selection.")
    c.line("template <int W>")
    with c.block("static ap_uint<W> from_chunks(const std::uint64_t *p)"):
        c.raw("#if ABCN_CSIM_FAST")
        c.line("unsigned long long q[(W + 63) / 64];")
        c.line("for (int i = 0; i < (W + 63) / 64; i++) q[i] = p[i];")
        c.line("return abcn::csim_store_chunks<W>(q);")
        c.raw("#else")
        c.line("ap_uint<W> v = 0;")
        with c.block("for (int lo = 0, i = 0; lo < W; lo += 64, i++)"):
            c.line("const int hi = (lo + 63 < W - 1) ? lo + 63 : W - 1;")
            c.line("v(hi, lo) = ap_uint<64>(p[i]);")
        c.line("return v;")
        c.raw("#endif")
    c.line()
    c.line("template <int W>")
    with c.block("static void to_chunks(const ap_uint<W> &v, std::uint64_t *p)"):
        c.raw("#if ABCN_CSIM_FAST")
        c.line("unsigned long long q[(W + 63) / 64];")
        c.line("abcn::csim_load_chunks(v, q);")
        c.line("for (int i = 0; i < (W + 63) / 64; i++) p[i] = q[i];")
        c.raw("#else")
        with c.block("for (int lo = 0, i = 0; lo < W; lo += 64, i++)"):
            c.line("const int hi = (lo + 63 < W - 1) ? lo + 63 : W - 1;")
            c.line("const ap_uint<64> chunk = v(hi, lo);")
            c.line("p[i] = (std::uint64_t)chunk.to_uint64();")
        c.raw("#endif")
    c.line()
    c.comment("Images [first, first + count) of the batch, IMAGES_PER_CALL per call of the top function.")
    with c.block("struct Worker", "};"):
        c.line("const std::uint64_t *in;")
        c.line("std::uint64_t *out;")
        c.line("std::uint64_t first, count, calls;")
        c.line("abcn::IterCounter counters[ABCN_NUM_STAGES];")
        c.line("int error;")
        with c.block("void run()"):
            c.line("hls::stream<abcn_in_t> s_in(\"in\");")
            c.line("hls::stream<abcn_out_t> s_out(\"out\");")
            with c.block("for (std::uint64_t done = 0; done < count;)"):
                c.line("const unsigned n = (unsigned)((count - done) < IMAGES_PER_CALL ? (count - done) : IMAGES_PER_CALL);")
                c.line("const std::uint64_t img = first + done;")
                c.line("const size_t in_words = (size_t)n * ABCN_IN_WORDS;")
                c.line("const std::uint64_t *src = in + (size_t)img * ABCN_IN_WORDS * IN_CH;")
                c.line("for (size_t k = 0; k < in_words; k++) s_in.write(from_chunks<ABCN_IN_WIDTH>(src + k * IN_CH));")
                c.line(f"{TOP}(s_in, s_out, n ABCN_TOP_COUNTERS_ARG(counters));")
                c.line("calls++;")
                with c.block("if (!s_in.empty())"):
                    c.line("error = 1;")
                    c.line("return;")
                c.line("const size_t out_words = (size_t)n * ABCN_OUT_WORDS;")
                c.line("std::uint64_t *dst = out + (size_t)img * ABCN_OUT_WORDS * OUT_CH;")
                with c.block("for (size_t k = 0; k < out_words; k++)"):
                    with c.block("if (s_out.empty())"):
                        c.line("error = 2;")
                        c.line("return;")
                    c.line("to_chunks<ABCN_OUT_WIDTH>(s_out.read(), dst + k * OUT_CH);")
                with c.block("if (!s_out.empty())"):
                    c.line("error = 3;")
                    c.line("return;")
                c.line("done += n;")
    c.line()
    c.comment("Threads the batch runs on: 1..64, at most one per image; one with ABCN_CSIM_DUMP (image-ordered taps).")
    with c.block("static unsigned effective_threads(unsigned threads, std::uint64_t images)"):
        c.raw("#ifdef ABCN_CSIM_DUMP")
        c.line("threads = 1;")
        c.raw("#endif")
        c.line("if (threads < 1) threads = 1;")
        c.line("if (threads > 64) threads = 64;")
        c.line("return threads > images ? (unsigned)images : threads;")
    c.line()
    c.comment("The batch, in memory: in = images*ABCN_IN_WORDS*IN_CH chunks, out = images*ABCN_OUT_WORDS*OUT_CH;")
    c.comment("counts[0] = calls of the top function, counts[1+2s] / counts[2+2s] = iterations / calls of stage s;")
    c.comment("*seconds = wall time of the simulation loop. Returns 0, or 1 / 2 / 3 when the design consumed too")
    c.comment("little input / produced too few / too many output words. Reentrant (the abcn kernels keep no")
    c.comment("global state); with ABCN_CSIM_DUMP one thread and the tap files opened by the caller.")
    with c.block('extern "C" int abcn_csim_batch(const std::uint64_t *in, std::uint64_t images, std::uint64_t *out, '
                 'unsigned threads, std::uint64_t *counts, double *seconds)'):
        c.line("threads = effective_threads(threads, images);")
        c.line("std::vector<Worker> workers(threads);")
        c.line("std::uint64_t next = 0;")
        with c.block("for (unsigned t = 0; t < threads; t++)"):
            c.line("const std::uint64_t share = images / threads + (t < images % threads ? 1 : 0);")
            c.line("workers[t].in = in;")
            c.line("workers[t].out = out;")
            c.line("workers[t].first = next;")
            c.line("workers[t].count = share;")
            c.line("workers[t].calls = 0;")
            c.line("workers[t].error = 0;")
            c.line("next += share;")
        c.line("std::vector<std::thread> pool;")
        c.line("const auto t_start = std::chrono::steady_clock::now();")
        c.line("for (unsigned t = 1; t < threads; t++) pool.emplace_back(&Worker::run, &workers[t]);")
        c.line("workers[0].run();")
        c.line("for (size_t t = 0; t < pool.size(); t++) pool[t].join();")
        c.line("*seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();")
        c.line("for (unsigned i = 0; i < 1 + 2 * ABCN_NUM_STAGES; i++) counts[i] = 0;")
        with c.block("for (unsigned t = 0; t < threads; t++)"):
            c.line("if (workers[t].error) return workers[t].error;")
            c.line("counts[0] += workers[t].calls;")
            with c.block("for (unsigned s = 0; s < ABCN_NUM_STAGES; s++)"):
                c.line("counts[1 + 2 * s] += workers[t].counters[s].iters;")
                c.line("counts[2 + 2 * s] += workers[t].counters[s].calls;")
        c.line("return 0;")
    c.line()
    c.comment("Sizes of this design (for callers that load the driver as a shared library): 0 input words per image,")
    c.comment("1 input chunks per word, 2 output words per image, 3 output chunks per word, 4 stages.")
    with c.block('extern "C" unsigned long long abcn_csim_info(unsigned what)'):
        c.line("const unsigned long long v[5] = {ABCN_IN_WORDS, IN_CH, ABCN_OUT_WORDS, OUT_CH, ABCN_NUM_STAGES};")
        c.line("return what < 5 ? v[what] : 0ull;")
    c.line()
    c.raw("#ifndef ABCN_CSIM_LIB")
    c.line("static const std::uint64_t MAGIC = 0x4e4e4342ULL;")
    c.line()
    with c.block("static void fail(const char *msg)"):
        c.line('std::fprintf(stderr, "csim_driver: %s\\n", msg);')
        c.line("std::exit(2);")
    c.line()
    with c.block("int main(int argc, char **argv)"):
        c.line('if (argc < 4 || argc > 6) fail("usage: csim_driver IN.bin OUT.bin COUNTS.txt [THREADS [DUMP_DIR]]");')
        c.line("unsigned threads = argc >= 5 ? (unsigned)std::strtoul(argv[4], nullptr, 10) : 1u;")
        c.line('std::FILE *fi = std::fopen(argv[1], "rb");')
        c.line('if (!fi) fail("cannot open the input file");')
        c.line("std::uint64_t hdr[4];")
        c.line('if (std::fread(hdr, sizeof hdr[0], 4, fi) != 4) fail("truncated header");')
        c.line('if (hdr[0] != MAGIC || hdr[2] != ABCN_IN_WORDS || hdr[3] != IN_CH) fail("input does not match this design");')
        c.line("const std::uint64_t images = hdr[1];")
        c.line('if (images == 0 || images > (1ull << 32)) fail("bad image count");')
        c.line("std::vector<std::uint64_t> in((size_t)images * ABCN_IN_WORDS * IN_CH);")
        c.line('if (std::fread(in.data(), sizeof in[0], in.size(), fi) != in.size()) fail("truncated input");')
        c.line("std::fclose(fi);")
        c.line("std::vector<std::uint64_t> out((size_t)images * ABCN_OUT_WORDS * OUT_CH);")
        c.raw("#ifdef ABCN_CSIM_DUMP")
        with c.block("for (unsigned t = 0; t < ABCN_NUM_TAPS; t++)"):
            c.line('const std::string path = std::string(argc == 6 ? argv[5] : ".") + "/tap" + std::to_string(t) + ".bin";')
            c.line('abcn_csim::tap_files[t] = std::fopen(path.c_str(), "wb");')
            c.line('if (!abcn_csim::tap_files[t]) fail("cannot open a dump file");')
        c.raw("#endif")
        c.line("std::uint64_t counts[1 + 2 * ABCN_NUM_STAGES];")
        c.line("double sim_seconds = 0.0;")
        c.line("const int err = abcn_csim_batch(in.data(), images, out.data(), threads, counts, &sim_seconds);")
        c.raw("#ifdef ABCN_CSIM_DUMP")
        c.line("for (unsigned t = 0; t < ABCN_NUM_TAPS; t++) std::fclose(abcn_csim::tap_files[t]);")
        c.raw("#endif")
        c.line('if (err == 1) fail("the design did not consume its input");')
        c.line('if (err == 2) fail("the design produced too few output words");')
        c.line('if (err == 3) fail("the design produced too many output words");')
        c.line("threads = effective_threads(threads, images);")
        c.line('std::FILE *fo = std::fopen(argv[2], "wb");')
        c.line('if (!fo) fail("cannot open the output file");')
        c.line("const std::uint64_t ohdr[4] = {MAGIC, images, ABCN_OUT_WORDS, OUT_CH};")
        c.line("std::fwrite(ohdr, sizeof ohdr[0], 4, fo);")
        c.line("std::fwrite(out.data(), sizeof out[0], out.size(), fo);")
        c.line('if (std::fclose(fo) != 0) fail("cannot write the output file");')
        c.line('std::FILE *fc = std::fopen(argv[3], "w");')
        c.line('if (!fc) fail("cannot open the counts file");')
        c.line('std::fprintf(fc, "calls %llu seconds %.6f threads %u\\n", (unsigned long long)counts[0], sim_seconds, threads);')
        with c.block("for (unsigned s = 0; s < ABCN_NUM_STAGES; s++)"):
            c.line('std::fprintf(fc, "%u %llu %llu\\n", s, (unsigned long long)counts[1 + 2 * s], '
                   '(unsigned long long)counts[2 + 2 * s]);')
        c.line("std::fclose(fc);")
        c.line("return 0;")
    c.raw("#endif")
    return c.text()
