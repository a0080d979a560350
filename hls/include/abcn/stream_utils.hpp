// Stream utilities: width converters between layers with different word widths.
#ifndef ABCN_STREAM_UTILS_HPP
#define ABCN_STREAM_UTILS_HPP

// A system header in C simulation, for '#pragma HLS' under -Wall -Werror: see common.hpp.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

#include "common.hpp"

#if ABCN_CSIM_FAST
#include <cstddef>
#include <vector>
#endif

namespace abcn {

// MultiBaseWidthConverter: re-slices a base-major multi-base stream from words of N*IN_W bits to
// words of N*OUT_W bits (bit n*W + j = base n, element j), in every base independently. The
// sequence of elements of each base is unchanged; e.g. a layer with PE=4 (words of N*4 bits)
// feeding a layer with SIMD=8 (N*8 bits). With N = 1 it is a plain bit-stream width converter
// (also usable for integer pixel streams when IN_W and OUT_W are multiples of the pixel width).
//
// NUM_IN_WORDS = input words per image; NUM_IN_WORDS*IN_W must be a multiple of OUT_W.
// One pipelined loop of max(NUM_IN_WORDS, NUM_OUT_WORDS) iterations per image: each iteration
// reads a word when fewer than OUT_W elements are buffered, then writes a word when at least OUT_W
// are buffered (buffer: IN_W + OUT_W elements per base).
template <unsigned N, unsigned IN_W, unsigned OUT_W, unsigned NUM_IN_WORDS>
void MultiBaseWidthConverter(hls::stream<ap_uint<N * IN_W> > &in,
                             hls::stream<ap_uint<N * OUT_W> > &out,
                             unsigned reps ABCN_COUNTER_PARAM) {
    static_assert((NUM_IN_WORDS * IN_W) % OUT_W == 0, "image does not fill whole output words");
    constexpr unsigned NUM_OUT_WORDS = NUM_IN_WORDS * IN_W / OUT_W;
    constexpr unsigned ITERS = NUM_IN_WORDS > NUM_OUT_WORDS ? NUM_IN_WORDS : NUM_OUT_WORDS;
    constexpr unsigned BUF_W = IN_W + OUT_W;
    ABCN_COUNT_CALL();
#if ABCN_CSIM_FAST
    // C simulation: per image, every base's element sequence as one bit vector of 64-bit chunks,
    // then cut into output words (same stream contents; reads all of an image's input before its
    // first write, which unbounded csim streams allow). The counter advances per image by
    // max(words read, words written), the iterations of the synthesizable loop moving them.
    {
        constexpr unsigned E = NUM_IN_WORDS * IN_W;  // elements per base and image
        constexpr unsigned EW = E / 64 + 2;           // chunks, plus one spare for csim_get_bits
        std::vector<unsigned long long> seq((std::size_t)N * EW);
        for (unsigned rep = 0; rep < reps; rep++) {
            unsigned reads = 0, writes = 0;
            for (std::size_t i = 0; i < seq.size(); i++) seq[i] = 0;
            for (unsigned w = 0; w < NUM_IN_WORDS; w++) {
                const ap_uint<N * IN_W> x = in.read();
                reads++;
                for (unsigned n = 0; n < N; n++)
                    for (unsigned c = 0; c * 64 < IN_W; c++) {
                        const unsigned len = (c * 64 + 64 <= IN_W) ? 64u : IN_W - c * 64;
                        const unsigned lo = n * IN_W + c * 64;
                        csim_put_bits(&seq[(std::size_t)n * EW], w * IN_W + c * 64, csim_field(x, lo, len), len);
                    }
            }
            for (unsigned o = 0; o < NUM_OUT_WORDS; o++) {
                if (N * OUT_W <= 64) {  // the word as one integer (no ap_uint range assignments)
                    unsigned long long y = 0;
                    for (unsigned n = 0; n < N; n++)
                        y |= csim_get_bits(&seq[(std::size_t)n * EW], o * OUT_W, OUT_W) << (n * OUT_W % 64);
                    out.write(ap_uint<N * OUT_W>(y));
                    writes++;
                    continue;
                }
                ap_uint<N * OUT_W> y = 0;
                for (unsigned n = 0; n < N; n++)
                    for (unsigned c = 0; c * 64 < OUT_W; c++) {
                        const unsigned len = (c * 64 + 64 <= OUT_W) ? 64u : OUT_W - c * 64;
                        const unsigned lo = n * OUT_W + c * 64;
                        y(lo + len - 1, lo) = ap_uint<64>(csim_get_bits(&seq[(std::size_t)n * EW], o * OUT_W + c * 64, len));
                    }
                out.write(y);
                writes++;
            }
            if (counter) counter->iters += reads > writes ? reads : writes;
        }
        return;
    }
#endif

    for (unsigned rep = 0; rep < reps; rep++) {
        ap_uint<BUF_W> buf[N];
#pragma HLS ARRAY_PARTITION variable = buf complete dim = 0
        for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
            buf[n] = 0;
        }
        unsigned fill = 0;  // elements buffered per base
        for (unsigned i = 0; i < ITERS; i++) {
#pragma HLS PIPELINE II = 1
            ABCN_COUNT_ITER();
            if (fill < OUT_W) {
                const ap_uint<N * IN_W> w = in.read();
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    ap_uint<BUF_W> slice = ap_uint<IN_W>(w((n + 1) * IN_W - 1, n * IN_W));
                    buf[n] |= slice << fill;
                }
                fill += IN_W;
            }
            if (fill >= OUT_W) {
                ap_uint<N * OUT_W> o = 0;
                for (unsigned n = 0; n < N; n++) {
#pragma HLS UNROLL
                    o((n + 1) * OUT_W - 1, n * OUT_W) = ap_uint<OUT_W>(buf[n](OUT_W - 1, 0));
                    buf[n] >>= OUT_W;
                }
                out.write(o);
                fill -= OUT_W;
            }
        }
    }
}

// Raw width converter (N = 1).
template <unsigned IN_W, unsigned OUT_W, unsigned NUM_IN_WORDS>
void StreamWidthConverter(hls::stream<ap_uint<IN_W> > &in, hls::stream<ap_uint<OUT_W> > &out,
                          unsigned reps ABCN_COUNTER_PARAM) {
#pragma HLS INLINE
    MultiBaseWidthConverter<1, IN_W, OUT_W, NUM_IN_WORDS>(in, out, reps ABCN_COUNTER_ARG(counter));
}

} // namespace abcn

#endif // ABCN_STREAM_UTILS_HPP
